"""Every text Pantheon sends to a model, apart from the code that sends it: the agents' system
prompt, the summary and anchor messages of the context, the manager's routing prompt and the two
summary stages. Changing a prompt is a change of this module only."""

from orchestration.llm.gateway import ChatMessage
from rooms.models import Agent


def system_prompt_build(*, agent_name: str, agent_key: str, role_prompt: str, others: list[str]) -> str:
    lines = [f"You are {agent_name} (@{agent_key}), one agent in a multi-agent chat room."]
    if others:
        lines.append("The other agents in the room: " + ", ".join(others) + ".")
    if role_prompt:
        lines.append(role_prompt)
    lines.append("Reply in your own voice; earlier replies of this turn are shown as 'Name: reply'.")
    return "\n".join(lines)


def summary_message_build(summary_text: str) -> str:
    return f"Summary of the conversation so far:\n{summary_text}"


def anchor_message_build(anchor_text: str) -> str:
    return f"(The opening message of this session, for reference:)\n{anchor_text}"


def routing_prompt_build(*, agents: list[Agent], user_input: str) -> tuple[ChatMessage, ...]:
    roster = _roster(agents)
    system = (
        "You are the manager of a multi-agent chat room. Decide which agents should answer the user's "
        "message, in the order they should speak. Answer with strict JSON only, of the form "
        '{"selected_agent_keys": ["key", ...]}, using only these keys.\n'
        f"AGENT_KEYS: {', '.join(a.agent_key for a in agents)}\n"
        f"Agents:\n{roster}"
    )
    return (ChatMessage("system", system), ChatMessage("user", user_input))


def transcript_build(turns: list[tuple[int, str, str]]) -> str:
    """``(index, user_input, assistant_output)`` → a plain transcript."""
    blocks = []
    for index, user_input, output in turns:
        blocks.append(f"[Turn {index}]\nUser: {user_input}\n{output}".rstrip())
    return "\n\n".join(blocks)


def summary_prompt_build(*, previous: str | None, transcript: str) -> tuple[ChatMessage, ...]:
    system = (
        "You maintain the running summary of a multi-agent conversation. Merge the previous summary "
        "with the new turns into one concise, factual summary that keeps names, decisions, open "
        'questions and commitments. Answer with strict JSON only: {"summary_text": "..."}.'
    )
    user = f"Previous summary:\n{previous or '(none)'}\n\nNew turns:\n{transcript}"
    return (ChatMessage("system", system), ChatMessage("user", user))


def extraction_prompt_build(*, summary_text: str) -> tuple[ChatMessage, ...]:
    system = (
        "Extract structured notes from the summary. Answer with strict JSON only: "
        '{"key_facts": [], "decisions": [], "open_questions": [], "action_items": []} — '
        "each a list of short strings."
    )
    return (ChatMessage("system", system), ChatMessage("user", summary_text))


def discussion_prompt_build(
    *, agents: list[Agent], user_input: str, transcript: str, eligible: list[str], allow_repeat: bool
) -> tuple[ChatMessage, ...]:
    """The manager's prompt in a discussion: the roster, the user's message, the discussion so far
    (``transcript``, already cut to fit) and who may speak next."""
    roster = _roster(agents)
    system = (
        "You are the manager of a discussion among the agents of a multi-agent chat room about the "
        "user's message. After each reply decide who speaks next — one agent, or several in order — or "
        "that the discussion is done (the question is settled, or the agents only repeat themselves). "
        "Answer with strict JSON only, of the form "
        '{"selected_agent_keys": ["key", ...], "done": false, "reason": "..."}, using only these keys.'
        + ("" if allow_repeat else " An agent may not speak twice in a row.")
        + f"\nAGENT_KEYS: {', '.join(a.agent_key for a in agents)}\nAgents:\n{roster}"
    )
    messages = [ChatMessage("system", system), ChatMessage("user", user_input)]
    if transcript:
        messages.append(ChatMessage("user", f"The discussion so far:\n{transcript}"))
    messages.append(ChatMessage("user", f"Who speaks next? May speak next: {', '.join(eligible)}."))
    return tuple(messages)


def _roster(agents: list[Agent]) -> str:
    return "\n".join(
        f"- {a.agent_key}: {a.name}" + (f" — {a.role_prompt[:200]}" if a.role_prompt else "") for a in agents
    )
