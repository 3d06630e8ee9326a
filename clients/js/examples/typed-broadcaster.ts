// 002's typed broadcaster (Cluso), ported to the backend SDK: each method
// publishes one typed event to its channel's subscribers. The payload types
// are the hub's own (src/events.rs), so a wrong field does not compile.
//
//   WSHUB_ADMIN_TOKEN=s3cret node typed-broadcaster.js ws://127.0.0.1:3000/ws  (after tsc)

import type { ChannelEvents, Diagnostic } from '@wshub/client';
import { WshubService } from '@wshub/client/server';

export class EventBroadcaster {
  constructor(private readonly hub: WshubService) {}

  /** Publishes `event` on a channel with that channel's payload type. */
  private emit<C extends keyof ChannelEvents>(channel: C, data: ChannelEvents[C]): Promise<number> {
    return this.hub.publish({ channel }, 'event', data);
  }

  fileChanged(file: string, event: 'add' | 'change' | 'unlink') {
    return this.emit('files', { file, event, timestamp: new Date().toISOString() });
  }
  diagnosticsUpdated(diagnostics: Diagnostic[]) {
    return this.emit('diagnostics', { diagnostics });
  }
  aiChunk(id: string, chunk: string, index: number, finished: boolean) {
    return this.emit('ai-response', { id, chunk, index, finished });
  }
  searchProgress(query: string, count: number, total: number, results: unknown[]) {
    return this.emit('search', { query, count, total, results });
  }
  validationComplete(result: unknown) {
    return this.emit('validation', { result });
  }
  gitEvent(type: string, message: string) {
    return this.emit('git', { type, message });
  }
}

// Run as a script: one event of each kind, then exit.
if (process.argv[1]?.endsWith('typed-broadcaster.js')) {
  const WebSocket = globalThis.WebSocket ?? (await import('ws')).default;
  const hub = new WshubService(process.argv[2] || 'ws://127.0.0.1:3000/ws', { token: process.env.WSHUB_ADMIN_TOKEN, WebSocket });
  await hub.ready();
  const broadcaster = new EventBroadcaster(hub);
  const delivered = [
    await broadcaster.fileChanged('src/main.ts', 'change'),
    await broadcaster.diagnosticsUpdated([{ file: 'src/main.ts', line: 3, column: 7, severity: 'error', message: "Cannot find name 'x'" }]),
    await broadcaster.aiChunk('r1', 'Hello', 0, true),
    await broadcaster.searchProgress('retry', 1, 1, [{ file: 'a.ts', line: 4 }]),
    await broadcaster.validationComplete({ valid: true, errors: [] }),
    await broadcaster.gitEvent('commit', 'Fix the parser'),
  ];
  console.log(JSON.stringify({ delivered }));
  hub.close();
}
