"""Where runs live and execute, in three rooms, each with a facade (its ``__init__``) that
the pages, the CLI and the views import, never a room's modules:

- ``bn_core.runs.store``: the SQLite run store (schema, migrations, records, catalog,
  cleanup, the replay queue, run owners and artifact files);
- ``bn_core.runs.replays``: window-replay files and the replay job (its own process);
- ``bn_core.runs.execution``: the job runner, its caps, the backends (local processes and
  Ray), the worker process and the one end-of-run path (``recording``).

Imports point down: ``execution`` -> ``replays`` -> ``store``. TF-free at import; the worker
and the replay job load ``bn_core.nn`` inside their own processes."""
