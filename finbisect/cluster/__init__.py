"""A hunt's builds and runs as tasks on a Dask cluster (`--dask-scheduler`).

`artifact` packs a built tree for the network; `tasks` is what a worker runs
(finbisect's own Builder and Probe, in the worker's own cache); `executor`
is the client's side: the hunt's history sent once per worker, one build per
revision across the cluster, a round's runs spread over the workers. Only
this package imports Dask, and only when a scheduler is given.
"""
