// The client without VS Code: `vscode` and `vscode-languageclient/node` are replaced by stubs
// that record what extension.js asks of them.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const Module = require('node:module');
const path = require('node:path');

function loadExtension(settings) {
  const log = { clients: [], commands: {}, configListeners: [], errors: [] };
  class LanguageClient {
    constructor(id, name, serverOptions, clientOptions) {
      Object.assign(this, { id, name, serverOptions, clientOptions, started: 0, stopped: 0 });
      log.clients.push(this);
    }
    async start() {
      this.started += 1;
      if (settings.failStart) throw new Error('spawn ENOENT');
    }
    async stop() {
      this.stopped += 1;
    }
  }
  const vscode = {
    workspace: {
      getConfiguration: (section) => ({ get: (key) => settings[`${section}.${key}`] }),
      createFileSystemWatcher: (glob) => ({ glob }),
      onDidChangeConfiguration: (listener) => {
        log.configListeners.push(listener);
        return { dispose() {} };
      },
    },
    commands: {
      registerCommand: (name, fn) => {
        log.commands[name] = fn;
        return { dispose() {} };
      },
    },
    window: { showErrorMessage: (message) => log.errors.push(message) },
  };
  const stubs = {
    vscode,
    'vscode-languageclient/node': { LanguageClient, TransportKind: { stdio: 'stdio-kind' } },
  };
  const originalLoad = Module._load;
  Module._load = function load(request, parent, isMain) {
    if (Object.prototype.hasOwnProperty.call(stubs, request)) return stubs[request];
    return originalLoad.call(this, request, parent, isMain);
  };
  const file = path.join(__dirname, '..', 'extension.js');
  delete require.cache[require.resolve(file)];
  try {
    return { extension: require(file), log };
  } finally {
    Module._load = originalLoad;
  }
}

const context = () => ({ subscriptions: [] });

test('starts `agp lsp` over stdio for agp documents by default', async () => {
  const { extension, log } = loadExtension({});
  const ctx = context();
  await extension.activate(ctx);
  assert.strictEqual(log.clients.length, 1);
  const client = log.clients[0];
  assert.strictEqual(client.id, 'agp');
  assert.deepStrictEqual(client.serverOptions, { command: 'agp', args: ['lsp'], transport: 'stdio-kind' });
  assert.ok(client.clientOptions.documentSelector.some((s) => s.language === 'agp' && s.scheme === 'file'));
  assert.strictEqual(client.started, 1);
  assert.ok(ctx.subscriptions.length >= 2);
  // Files changed on disk are watched by the server's own registration, not a second watcher.
  assert.strictEqual(client.clientOptions.synchronize, undefined);
});

test('uses the agp.server.path setting for the executable', async () => {
  const { extension, log } = loadExtension({ 'agp.server.path': '  /opt/agp/bin/agp ' });
  await extension.activate(context());
  assert.strictEqual(log.clients[0].serverOptions.command, '/opt/agp/bin/agp');
  assert.deepStrictEqual(log.clients[0].serverOptions.args, ['lsp']);
});

test('restarts the server when the path setting changes, and on the restart command', async () => {
  const settings = {};
  const { extension, log } = loadExtension(settings);
  await extension.activate(context());
  settings['agp.server.path'] = '/usr/local/bin/agp';
  await log.configListeners[0]({ affectsConfiguration: (key) => key === 'agp.server.path' });
  assert.strictEqual(log.clients.length, 2);
  assert.strictEqual(log.clients[0].stopped, 1);
  assert.strictEqual(log.clients[1].serverOptions.command, '/usr/local/bin/agp');
  await log.configListeners[0]({ affectsConfiguration: () => false });
  assert.strictEqual(log.clients.length, 2, 'an unrelated setting does not restart the server');
  await log.commands['agp.restartServer']();
  assert.strictEqual(log.clients.length, 3);
  await extension.deactivate();
  assert.strictEqual(log.clients[2].stopped, 1);
});

test('reports a server that cannot start instead of throwing', async () => {
  const { extension, log } = loadExtension({ failStart: true, 'agp.server.path': 'missing-agp' });
  await extension.activate(context());
  assert.strictEqual(log.errors.length, 1);
  assert.match(log.errors[0], /missing-agp lsp/);
  assert.match(log.errors[0], /agp\.server\.path/);
});

test('package.json contributes what the client relies on', () => {
  const pkg = require('../package.json');
  assert.ok(pkg.activationEvents.includes('onLanguage:agp'));
  const language = pkg.contributes.languages.find((l) => l.id === 'agp');
  assert.deepStrictEqual(language.extensions, ['.agp']);
  assert.strictEqual(pkg.contributes.configuration.properties['agp.server.path'].default, 'agp');
  assert.ok(pkg.contributes.commands.some((c) => c.command === 'agp.restartServer'));
  const grammar = pkg.contributes.grammars.find((g) => g.language === 'agp');
  assert.strictEqual(require(path.join('..', grammar.path)).scopeName, grammar.scopeName);
});
