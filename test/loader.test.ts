import { describe, expect, it } from 'vitest';
import { LIBRARY_VERSION } from '../generated/library.js';
import { version } from '../generated/version.js';
import { loadedVersion } from '../runtime/loader.js';
import { useServer } from './support/client.js';

describe('loader', () => {
  const { client } = useServer();

  it('loads the library and reports its version', async () => {
    await expect(version(client)).resolves.toEqual({ status: 'OK', version: LIBRARY_VERSION });
    await expect(loadedVersion(client.transport)).resolves.toBe(LIBRARY_VERSION);
  });

  it('does nothing when the right version is already loaded', async () => {
    const [status] = await client.ensureLibrary();
    expect(status).toEqual({ before: LIBRARY_VERSION, after: LIBRARY_VERSION, loaded: false });
  });
});
