"""``make bench``: what Pantheon adds on top of the LLM, measured in one run on loopback.

Three things are compared against the same fake OpenAI-compatible server, all served by the same
gunicorn (the production settings of ``gunicorn.conf.py``) on PostgreSQL:

- **direct**: the ``openai`` client replaying the very request a turn sent (the model's own cost);
- **floor**: the simplest DRF view doing a turn's work (``floor.py``): a token lookup, the same LLM
  call, one transaction that locks the session's row and inserts 4 rows;
- **turn**: a Pantheon manual turn through the HTTP API.

Latency (fake LLM at 0 ms): the three alternate call by call at several session lengths, plus a
three-agent roundtable and the first request after start. Load (fake LLM at 200 ms): many clients,
one session each, Pantheon's turns/s against the floor's in alternating rounds. Figures go to
``var/bench.json``.

    python -m tools.bench [--turns 30] [--lengths 0,10,1000] [--latency-ms 200] [--clients 32]
                          [--duration 10] [--rounds 2] [--warmup 5] [--output var/bench.json]

Modules: ``stack`` (database, fake server, gunicorn), ``fixtures`` (users, rooms, sessions),
``calls`` (one call of each kind), ``latency`` and ``load`` (the two measurements; ``load`` also
runs alone as the load generator's subprocess), ``report`` (figures, table, exit status), and the
Django pieces the server needs (``settings``, ``urls``, ``floor``, ``gunicorn_conf``).
"""
