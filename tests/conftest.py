import pytest


@pytest.fixture
def write_policy(tmp_path):
    """Write policy text to a file and return its path."""

    def write(text: str, name: str = "policy.agp"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write
