"""The benchmark (run it as ``python bench/run.py``; not part of the product).

- :mod:`bench.run`        options, the services (from the test kit), the loop
- :mod:`bench.install`    the throwaway venv with a regular copy of the package
- :mod:`bench.sets`       the library sets (--set NAME=PYTHON): an install, a launcher each
- :mod:`bench.measure`    the launcher (wall, CPU, peak RSS of one process), the imports probe
- :mod:`bench.scenarios`  what a scenario is, the baselines and floors, --only
- :mod:`bench.phases`     the phases: their services set up, their scenarios made
- :mod:`bench.throughput`  a worker's tasks per second with and without the task records
- :mod:`bench.answering`  the workers' own CPU answering one ping, beside the check's wait, and
                          the same messages by redis-cli (what their answering adds)
- :mod:`bench.budgets`    the budgets each run is judged by
- :mod:`bench.compare`    issue 16's figures, the library sets side by side
- :mod:`bench.report`     the Markdown, written into docs/performance.md

A regular package, so that no other ``bench`` on sys.path can shadow it.
"""
