"""`agp lsp`: the language server, on stdio."""

from __future__ import annotations

import click


@click.command("lsp")
@click.option("--stdio", is_flag=True, help="Talk LSP over stdin/stdout (the default; editors "
              "often pass it).")
def command(stdio: bool) -> None:
    """Run the agp language server on stdio, for editors (VS Code, Neovim, Helix)."""
    from agp.lsp.server import main

    main()
