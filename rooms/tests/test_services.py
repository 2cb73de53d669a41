"""The room and agent services enforce the domain rules for every caller, not only the API."""

import threading
import time

import pytest
from django.db import IntegrityError, connection, transaction

from pantheon.errors import ApplicationError
from rooms import services
from rooms.models import Agent, Room
from rooms.services import AgentKeyTaken
from rooms.tests.factories import AgentFactory, RoomFactory
from usage.tests.factories import UserFactory

WRITER = {"agent_key": "writer", "name": "Writer", "model_alias": "deepseek"}


@pytest.mark.django_db
class TestRooms:
    def test_room_create(self):
        owner = UserFactory()
        room = services.room_create(owner=owner, name="Salon")
        assert Room.objects.get(pk=room.pk).owner == owner and room.description == ""

    def test_room_update_changes_only_the_given_fields(self):
        room = RoomFactory(name="Salon", description="Ideas")
        services.room_update(room=room, name="Parlour")
        room.refresh_from_db()
        assert (room.name, room.description) == ("Parlour", "Ideas")

    def test_room_delete_is_soft_for_the_room_and_its_agents(self):
        room = RoomFactory()
        AgentFactory(room=room, agent_key="writer")
        services.room_delete(room=room)
        assert (
            Room.objects.filter(pk=room.pk).exists() and not Room.objects.live().filter(pk=room.pk).exists()
        )
        assert (
            Agent.objects.filter(room=room).count() == 1
            and not Agent.objects.live().filter(room=room).exists()
        )


@pytest.mark.django_db
class TestAgentCreate:
    @pytest.mark.parametrize("key", ["Writer", "1writer", "w" * 33, "wri ter", "", "writer\n"])
    def test_a_bad_key_is_refused_with_the_field(self, key):
        room = RoomFactory()
        with pytest.raises(ApplicationError) as refused:
            services.agent_create(room=room, **{**WRITER, "agent_key": key})
        assert refused.value.code == "invalid"
        assert "agent_key" in refused.value.extra["fields"]
        assert not Agent.objects.filter(room=room).exists()

    @pytest.mark.parametrize("alias", ["gpt-17", "", "DEEPSEEK"])
    def test_a_model_outside_the_active_catalog_is_refused(self, alias):
        room = RoomFactory()
        with pytest.raises(ApplicationError) as refused:
            services.agent_create(room=room, **{**WRITER, "model_alias": alias})
        assert refused.value.code == "invalid" and "model_alias" in refused.value.extra["fields"]
        assert not Agent.objects.filter(room=room).exists()

    def test_a_live_duplicate_key_is_409(self):
        room = RoomFactory()
        AgentFactory(room=room, agent_key="writer")
        with pytest.raises(AgentKeyTaken) as refused:
            services.agent_create(room=room, **WRITER)
        assert refused.value.code == "agent_key_taken"

    def test_the_key_of_a_deleted_agent_is_free(self):
        room = RoomFactory()
        services.agent_delete(agent=AgentFactory(room=room, agent_key="writer"))
        agent = services.agent_create(room=room, **WRITER)
        assert Agent.objects.live().get(room=room, agent_key="writer") == agent

    def test_position_defaults_to_the_end_ignoring_deleted_agents(self):
        room = RoomFactory()
        AgentFactory(room=room, agent_key="a", position=2)
        services.agent_delete(agent=AgentFactory(room=room, agent_key="b", position=9))
        assert services.agent_create(room=room, **WRITER).position == 3

    def test_the_first_agent_goes_to_position_zero(self):
        assert services.agent_create(room=RoomFactory(), **WRITER).position == 0

    @pytest.mark.parametrize("window", [131_073, 3_071])
    def test_a_window_beyond_the_ceiling_or_below_the_floor_is_refused(self, window):
        room = RoomFactory()
        with pytest.raises(ApplicationError) as refused:
            services.agent_create(room=room, **WRITER, context_window_tokens=window)
        assert refused.value.code == "invalid" and "context_window_tokens" in refused.value.extra["fields"]
        assert not Agent.objects.filter(room=room).exists()


@pytest.mark.django_db
class TestAgentUpdate:
    def test_none_leaves_a_field_as_it_is(self):
        agent = AgentFactory(agent_key="writer", name="Writer", role_prompt="You write.", position=4)
        services.agent_update(agent=agent, name="Novelist")
        agent.refresh_from_db()
        assert (agent.agent_key, agent.name, agent.role_prompt, agent.position) == (
            "writer",
            "Novelist",
            "You write.",
            4,
        )

    def test_a_taken_key_is_409_and_nothing_changes(self):
        room = RoomFactory()
        AgentFactory(room=room, agent_key="writer")
        critic = AgentFactory(room=room, agent_key="critic", name="Critic")
        with pytest.raises(AgentKeyTaken):
            services.agent_update(agent=critic, agent_key="writer", name="Changed")
        critic.refresh_from_db()
        assert (critic.agent_key, critic.name) == ("critic", "Critic")

    def test_a_bad_key_or_model_is_refused(self):
        agent = AgentFactory(agent_key="writer", model_alias="deepseek")
        for change in ({"agent_key": "Bad"}, {"model_alias": "gpt-17"}):
            with pytest.raises(ApplicationError) as refused:
                services.agent_update(agent=agent, **change)
            assert set(refused.value.extra["fields"]) == set(change)
        agent.refresh_from_db()
        assert (agent.agent_key, agent.model_alias) == ("writer", "deepseek")

    def test_a_new_model_that_the_kept_window_exceeds_is_refused(self):
        agent = AgentFactory(model_alias="deepseek", context_window_tokens=64_000)
        with pytest.raises(ApplicationError) as refused:
            services.agent_update(agent=agent, model_alias="qwen")
        assert "context_window_tokens" in refused.value.extra["fields"]
        agent.refresh_from_db()
        assert (agent.model_alias, agent.context_window_tokens) == ("deepseek", 64_000)

    def test_a_key_freed_by_a_deletion_can_be_taken_by_a_rename(self):
        room = RoomFactory()
        services.agent_delete(agent=AgentFactory(room=room, agent_key="writer"))
        critic = AgentFactory(room=room, agent_key="critic")
        services.agent_update(agent=critic, agent_key="writer")
        assert Agent.objects.live().get(room=room).agent_key == "writer"


@pytest.mark.django_db
def test_the_partial_unique_index_backs_the_check():
    room = RoomFactory()
    AgentFactory(room=room, agent_key="writer")
    with pytest.raises(IntegrityError), transaction.atomic():
        AgentFactory(room=room, agent_key="writer")  # straight to the table, past the service's check


# serialized_rollback: the flush after a transactional test must not lose the seeded catalog.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_simultaneous_creates_of_one_key_make_one_agent_and_a_409():
    """Both creates pass the "is the key live?" check; the partial unique index settles it, and the
    loser gets 409 from a savepoint that leaves its caller's transaction usable."""
    room = RoomFactory()
    first_inserted = threading.Event()
    outcome: dict[str, object] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                services.agent_create(room=room, **{**WRITER, "name": "First"})
                first_inserted.set()
                time.sleep(1.0)  # hold the uncommitted row while the second create runs into it
        finally:
            first_inserted.set()
            connection.close()

    def second() -> None:
        first_inserted.wait(10)
        try:
            with transaction.atomic():
                try:
                    services.agent_create(room=room, **{**WRITER, "name": "Second"})
                except AgentKeyTaken as exc:
                    outcome["error"] = exc
                    outcome["rooms_after"] = Room.objects.count()  # the transaction still works
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    error = outcome["error"]
    assert isinstance(error, AgentKeyTaken) and isinstance(error.__cause__, IntegrityError)
    assert outcome["rooms_after"] == 1
    assert list(Agent.objects.filter(room=room).values_list("name", flat=True)) == ["First"]
