"""End-to-end tests of `agp lsp`: a real server process over stdio, driven by pytest-lsp.

Every test waits for the server's real messages (`wait_for_notification`), never sleeps; a wait
that the server never answers fails after a timeout instead of hanging.
"""

import asyncio
import shutil
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from support import EXAMPLES

EXAMPLE = EXAMPLES / "customer-support"


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A copy of the customer-support policy set and its traces, as the workspace folder."""
    root = tmp_path / "policies"
    shutil.copytree(EXAMPLE, root)
    return root


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "agp.lsp"]))
async def client(lsp_client: LanguageClient, workspace: Path):
    lsp_client.registrations = []  # what the server asked to register (the file watcher)
    lsp_client.registered = asyncio.Event()
    lsp_client.lens_refreshes = asyncio.Queue()  # one item per `workspace/codeLens/refresh`

    @lsp_client.feature(lsp.CLIENT_REGISTER_CAPABILITY)
    def register(params: lsp.RegistrationParams) -> None:
        lsp_client.registrations.extend(params.registrations)
        lsp_client.registered.set()

    @lsp_client.feature(lsp.WORKSPACE_CODE_LENS_REFRESH)
    def refresh_lenses(params: None) -> None:
        lsp_client.lens_refreshes.put_nowait(True)

    await lsp_client.initialize_session(lsp.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        workspace_folders=[lsp.WorkspaceFolder(uri=workspace.as_uri(), name="policies")],
        initialization_options={"debounce": 10},
    ))
    yield
    await lsp_client.shutdown_session()
