// The official `openai` npm client against the real `calm serve`.
// Run by ctest (tests/CMakeLists.txt), which sets CALM_BIN and CALM_TEST_MODELS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';

let server;
let client;

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'calm-openai-'));
  const config = join(dir, 'fleet.yaml');
  writeFileSync(config, [
    'models:',
    '  - id: tiny',
    '    description: tiny test model',
    `    gguf: ${process.env.CALM_TEST_MODELS}/tiny-chatml.gguf`,
    '    context: 256',
    '    parallel: 2',
    '    threads: 2',
    '',
  ].join('\n'));
  server = spawn(process.env.CALM_BIN, ['serve', '--config', config, '--port', '0'],
                 { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`calm serve did not start: ${out}`)), 60000);
    server.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/listening on http:\/\/[^:]+:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    server.on('exit', (code) => reject(new Error(`calm serve exited with ${code}: ${out}`)));
  });
  client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(() => { server?.kill('SIGTERM'); });

test('lists the fleet', async () => {
  const models = [];
  for await (const m of client.models.list()) models.push(m.id);
  assert.deepEqual(models, ['tiny']);
});

test('chat completion, not streamed', async () => {
  const r = await client.chat.completions.create({
    model: 'tiny', messages: [{ role: 'user', content: 'Hello!' }], max_tokens: 8, seed: 1,
    ignore_eos: true,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, 'tiny');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 8);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 8);
});

test('chat completion, streamed, matches the plain answer', async () => {
  const body = { model: 'tiny', messages: [{ role: 'user', content: 'Stream please' }],
                 max_tokens: 12, seed: 9, ignore_eos: true };
  const plain = await client.chat.completions.create(body);
  const stream = await client.chat.completions.create({
    ...body, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) continue;
    text += choice.delta?.content ?? '';
    finish = choice.finish_reason ?? finish;
  }
  assert.equal(text, plain.choices[0].message.content);
  assert.equal(finish, 'length');
  assert.equal(usage.completion_tokens, 12);
});

test('legacy completion, streamed and not', async () => {
  const r = await client.completions.create({ model: 'tiny', prompt: 'Once', max_tokens: 4,
                                              ignore_eos: true });
  assert.equal(r.usage.completion_tokens, 4);
  let chunks = 0;
  for await (const c of await client.completions.create({ model: 'tiny', prompt: 'Once',
                                                          max_tokens: 4, stream: true })) {
    assert.equal(c.object, 'text_completion');
    chunks++;
  }
  assert.ok(chunks >= 1);
});

test('unknown model raises NotFoundError', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
});

test('invalid sampling raises BadRequestError naming the field', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'x' }],
                                     temperature: 5 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature');
});
