"""``paymux bench``: throughput, latency and resource use of the hub, next to the machine's ceilings.

Modules:

* :mod:`paymux.bench.load` - a lean HTTP/1.1 keep-alive load generator, run as a separate process;
* :mod:`paymux.bench.noop_app` - a no-op endpoint on the hub's server stack (the HTTP ceiling);
* :mod:`paymux.bench.ceiling` - the same rows as accepted payments written by plain SQL (the SQL ceiling);
* :mod:`paymux.bench.micro` - in-process microbenchmarks of route planning and pricing;
* :mod:`paymux.bench.procs` - starting, measuring (``/proc``) and stopping the processes under test;
* :mod:`paymux.bench.runner` - the whole run, the table and the JSON file.
"""
