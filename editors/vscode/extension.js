// The agp VS Code client: starts `agp lsp` over stdio for .agp files. Plain JavaScript, so the
// folder can be installed or packaged without a build step.
'use strict';

const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');

let client;

/** The server command from the settings: `<agp.server.path> lsp`. */
function serverOptions() {
  const configured = vscode.workspace.getConfiguration('agp').get('server.path');
  const command = typeof configured === 'string' && configured.trim() ? configured.trim() : 'agp';
  return { command, args: ['lsp'], transport: TransportKind.stdio };
}

function createClient() {
  const clientOptions = {
    documentSelector: [{ scheme: 'file', language: 'agp' }, { scheme: 'untitled', language: 'agp' }],
    // No `synchronize.fileEvents`: the server registers its own watcher for `**/*.agp` at start-up
    // (dynamic registration), and a second watcher here would report every change twice.
  };
  // The id 'agp' makes the `agp.trace.server` setting apply to this client.
  return new LanguageClient('agp', 'agp language server', serverOptions(), clientOptions);
}

async function start() {
  client = createClient();
  try {
    await client.start();
  } catch (err) {
    const { command } = serverOptions();
    vscode.window.showErrorMessage(
      `Could not start the agp language server with "${command} lsp": ${err && err.message ? err.message : err}. ` +
        'Install agp or set "agp.server.path".',
    );
  }
}

async function restart() {
  if (client) {
    const old = client;
    client = undefined;
    await old.stop().catch(() => undefined);
  }
  await start();
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand('agp.restartServer', restart),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration('agp.server.path')) {
        return restart();
      }
      return undefined;
    }),
  );
  await start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate, serverOptions };
