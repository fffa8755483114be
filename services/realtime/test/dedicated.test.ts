/**
 * A tenant whose Tenant spec says `isolation.database: dedicated`, provisioned by the operator's
 * real reconcilers: its registry row names a database of its own, and the hub must do its
 * session checks and `message:send` transactions there (a pool per database, `TenantPools`) —
 * next to a shared tenant in the platform database, with no way across.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Socket } from 'phoenix';
import { quoteIdent, startTestIssuer, type TestIssuer } from '@simptu/common';
import type { RealtimeApp } from '../src/app.ts';
import {
  collect,
  createPlatform,
  join,
  newUuid,
  openSocket,
  provisionTenant,
  push,
  startHub,
  uniqueTenantName,
  waitFor,
  type OperatorTenant,
  type Platform,
} from './support.ts';

const S = uniqueTenantName('rts');
const D = uniqueTenantName('rtd');

let issuer: TestIssuer;
let p: Platform;
let d: OperatorTenant;
let hub: RealtimeApp;
const sockets: Socket[] = [];
let dCustomer: string;
let dCustomer2: string;
let dSession: string;
let sCustomer: string;
let sSession: string;

const socketFor = async (tenant: string, sub: string, roles: string[]) => {
  const t = await issuer.signAccessToken({ tenant, sub, roles }, { expiresIn: '10m' });
  const s = await openSocket(hub.socketUrl, t);
  sockets.push(s);
  return s;
};

beforeAll(async () => {
  issuer = await startTestIssuer();
  p = await createPlatform([S]);
  d = await provisionTenant(p, D, { isolation: 'dedicated' });
  dCustomer = await d.createCustomer();
  dCustomer2 = await d.createCustomer();
  dSession = await d.createSession(dCustomer);
  sCustomer = await p.createCustomer(S);
  sSession = await p.createSession(S, sCustomer);
  hub = await startHub(p, issuer);
});

afterAll(async () => {
  for (const s of sockets) s.disconnect();
  await hub?.drain();
  await d?.deprovision();
  await p?.close();
  await issuer?.close();
});

describe('dedicated-database tenant', () => {
  it('is provisioned into a database of its own', async () => {
    expect(d.database).not.toBe(p.db.name);
    const { rows } = await p.admin.query('SELECT database_name FROM platform.tenants WHERE name = $1', [D]);
    expect(rows).toEqual([{ database_name: d.database }]);
    // Nothing of it in the platform database.
    const ns = await p.admin.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [d.ref.schema]);
    expect(ns.rowCount).toBe(0);
  });

  it('its customer joins the session and gets its events; message:send persists in the dedicated database', async () => {
    const s = await socketFor(D, dCustomer, ['customer']);
    const ch = s.channel(`session:${dSession}`);
    const got = collect(ch, ['agent.token']);
    expect((await join(ch)).status).toBe('ok');

    // Server push from the tenant's own topics.
    await p.produce(D, 'agent', 'io.simptu.agent.token', { session_id: dSession, delta: 'hello', seq: 0 });
    await waitFor(() => got.length === 1, 20_000, 'agent.token');
    expect(got[0]!.payload).toMatchObject({ session_id: dSession, delta: 'hello' });

    const clientMsgId = newUuid();
    const r1 = await push(ch, 'message:send', { body: 'my crown came off', client_msg_id: clientMsgId });
    expect(r1).toMatchObject({
      status: 'ok',
      response: { duplicate: false, message_id: expect.any(String) },
    });
    const messages = `${quoteIdent(d.ref.schema)}.messages`;
    const rows = await d.admin.query(`SELECT id, session_id, role, body FROM ${messages} WHERE id = $1`, [
      r1.response.message_id,
    ]);
    expect(rows.rows).toMatchObject([{ id: r1.response.message_id, session_id: dSession, role: 'user' }]);
    expect((rows.rows[0].body as Buffer).includes('crown')).toBe(false); // ciphertext at rest
    // The events for the agent and the subscribers, in the same transaction, in the same database.
    const outbox = await d.admin.query<{ event_type: string }>(
      `SELECT event_type FROM ${quoteIdent(d.ref.schema)}.outbox WHERE aggregate_id = $1 ORDER BY seq`,
      [dSession],
    );
    expect(outbox.rows.map((r) => r.event_type).sort()).toEqual([
      'io.simptu.message.created',
      'io.simptu.message.received',
    ]);
    // A retry is answered from the idempotency record, nothing new is written.
    const r2 = await push(ch, 'message:send', { body: 'my crown came off', client_msg_id: clientMsgId });
    expect(r2.response).toMatchObject({ message_id: r1.response.message_id, duplicate: true });
    const count = await d.admin.query(`SELECT count(*)::int AS n FROM ${messages} WHERE session_id = $1`, [
      dSession,
    ]);
    expect(count.rows[0].n).toBe(1);
  });

  it('staff of the tenant may join; nobody else, and no way across to or from the shared tenant', async () => {
    const staff = await socketFor(D, newUuid(), ['staff']);
    expect((await join(staff.channel(`session:${dSession}`))).status).toBe('ok');

    const other = await socketFor(D, dCustomer2, ['customer']);
    expect((await join(other.channel(`session:${dSession}`))).response).toEqual({ reason: 'unauthorized' });
    // The dedicated tenant's customer, a shared tenant's session id (exists, in the other database).
    const dc = await socketFor(D, dCustomer, ['customer']);
    expect((await join(dc.channel(`session:${sSession}`))).response).toEqual({ reason: 'unauthorized' });
    // The shared tenant's customer and staff, the dedicated tenant's session id.
    const sc = await socketFor(S, sCustomer, ['customer']);
    expect((await join(sc.channel(`session:${dSession}`))).response).toEqual({ reason: 'unauthorized' });
    const sStaff = await socketFor(S, newUuid(), ['staff']);
    const sch = sStaff.channel(`session:${dSession}`);
    expect((await join(sch)).response).toEqual({ reason: 'unauthorized' });
    // …while the shared tenant's own session still works.
    expect((await join(sc.channel(`session:${sSession}`))).status).toBe('ok');
  });
});
