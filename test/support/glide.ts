// The whole suite over Valkey GLIDE: with FF_TEST_TRANSPORT=glide (`npm run test:glide`),
// useServer's client sends through the GLIDE transport instead of ioredis; the raw ioredis
// connection the tests read keys with stays. The GLIDE client is made in beforeAll, so the
// transport the client is built with forwards to it once it exists.
import { GlideClient } from '@valkey/valkey-glide';
import { GlideTransport } from '../../runtime/glide.js';
import type { FlowFabricError } from '../../runtime/errors.js';
import type { BatchReply, FcallRequest, Transport } from '../../runtime/transport.js';

export const useGlide = process.env.FF_TEST_TRANSPORT === 'glide';

export class LateGlideTransport implements Transport {
  private inner: GlideTransport | undefined;
  private glide: GlideClient | undefined;

  async connect(url: string): Promise<void> {
    const { hostname, port } = new URL(url);
    this.glide = await GlideClient.createClient({ addresses: [{ host: hostname, port: Number(port) }], requestTimeout: 10_000 });
    this.inner = new GlideTransport(this.glide);
  }

  close(): void {
    this.glide?.close();
  }

  private get ready(): GlideTransport {
    if (!this.inner) throw new Error('the GLIDE test transport is used before beforeAll connected it');
    return this.inner;
  }

  fcall(request: FcallRequest): Promise<unknown> {
    return this.ready.fcall(request);
  }
  fcallBatch(requests: readonly FcallRequest[]): Promise<BatchReply[]> {
    return this.ready.fcallBatch(requests);
  }
  command(name: string, args: readonly (string | number)[]): Promise<unknown> {
    return this.ready.command(name, args);
  }
  primaries(): Promise<Transport[]> {
    return this.ready.primaries();
  }
  classify(error: unknown): FlowFabricError {
    return this.ready.classify(error);
  }
  describe(): string {
    return this.ready.describe();
  }
}
