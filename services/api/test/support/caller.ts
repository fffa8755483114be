/**
 * A JSON request through `app.inject` as a bearer of `token` (none: anonymous), for the route
 * tests that call one endpoint family many times with different roles.
 */
import type { TestApp } from './index.ts';

/**
 * `call(method, url, token, payload?)` on the app `app()` returns — a getter, because the test
 * file builds its app in `beforeAll`, after this is called.
 */
export function caller(app: () => TestApp) {
  return async (method: 'GET' | 'POST', url: string, token: string | undefined, payload?: unknown) => {
    const t = app();
    const res = await t.app.inject({
      method,
      url,
      headers: token ? t.auth(token) : {},
      ...(payload !== undefined ? { payload: payload as object } : {}),
    });
    return { status: res.statusCode, body: res.json(), headers: res.headers };
  };
}
