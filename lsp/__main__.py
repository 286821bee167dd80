"""`python -m agp.lsp`: the language server on stdio (the same as `agp lsp`)."""

from agp.lsp.server import main

main()
