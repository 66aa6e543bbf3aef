"""Where runs live and execute: the SQLite run store, the job runner, execution backends, the
worker process, artifacts written atomically, and window-replay files. TF-free at import;
the worker and the replay job load ``bn_core.nn`` inside their own processes."""
