"""`agp serve`: the decision service (docs/serve.md).

`Service(engine, options).app` is the ASGI application; `serve` runs it under uvicorn with
reloads and a graceful shutdown. Embedders that run their own ASGI server can mount the app.
"""

from agp.serve.app import Problem, ServeOptions, Service
from agp.serve.run import Runner, bind, serve

__all__ = ["Problem", "Runner", "ServeOptions", "Service", "bind", "serve"]
