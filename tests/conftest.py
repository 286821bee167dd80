import shutil

import pytest
from support import EXAMPLES


@pytest.fixture
def policy_dir(tmp_path):
    """A copy of the customer-support example set, to edit (reloads) or serve."""
    folder = tmp_path / "policy"
    shutil.copytree(EXAMPLES / "customer-support", folder)
    return folder


@pytest.fixture
def write_policy(tmp_path):
    """Write policy text to a file and return its path."""

    def write(text: str, name: str = "policy.agp"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server for the whole session (support.RedisServer), stopped at the end."""
    from support import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    """The URL of the session's Redis, empty, and running (a test may have stopped it)."""
    if redis_server.proc is None:
        redis_server.start()
    redis_server.flush()
    return redis_server.url
