/**
 * The pages a person sees (DESIGN §7): login (branded with the tenant's display name),
 * invitation acceptance, forgotten password and password reset. Plain HTML forms, no
 * JavaScript, mounted in front of oidc-provider's own routes as Koa middleware.
 *
 * - CSRF: a random token in an HttpOnly SameSite=Lax cookie, and in every form an HMAC of it
 *   bound to the form's purpose (`login:<uid>`, `invite:<tenant>`, …); a POST whose field
 *   doesn't match the cookie is refused with 403 before anything else happens.
 * - Login: per-IP rate limit, per-account lockout (Redis, see rate-limit.ts); the same
 *   message for an unknown address and a wrong password.
 * - Every response: `Cache-Control: no-store`, a CSP without scripts, `frame-ancestors 'none'`.
 * @see https://cheatsheetseries.owasp.org/cheatsheets/Cross-Site_Request_Forgery_Prevention_Cheat_Sheet.html#signed-double-submit-cookie-recommended
 * @see https://github.com/panva/node-oidc-provider/blob/main/docs/README.md#user-flows
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type pg from 'pg';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import {
  acceptInvitation,
  findInvitationByToken,
  isValidTenantName,
  SimptuError,
  type Logger,
} from '@simptu/common';
import type { AuthConfig } from './config.ts';
import { tenantOfWebClientId, type ClientResolver, type TenantInfo } from './clients.ts';
import { audit } from './db.ts';
import { passwordResetMessage, type Mailer } from './mail.ts';
import { RateLimiter } from './rate-limit.ts';
import type { TenantDatabases } from './tenant-db.ts';
import {
  checkPassword,
  createUser,
  findUserByEmail,
  normalizeLoginEmail,
  passwordProblem,
  setPassword,
  UserExistsError,
} from './users.ts';
import { forgotPage, loginPage, messagePage, setPasswordPage } from './views.ts';

type Ctx = KoaContextWithOIDC;
type Next = () => Promise<unknown>;

export const CSRF_COOKIE = 'simptu.csrf';
const MAX_FORM_BYTES = 16 * 1024;

export interface InteractionDeps {
  config: AuthConfig;
  db: pg.Pool;
  clients: ClientResolver;
  tenants: TenantDatabases;
  limiter: RateLimiter;
  mailer: Mailer;
  logger: Logger;
  /** the current provider (it is rebuilt when signing keys rotate) */
  provider: () => Provider;
  clientIp: (ctx: Ctx) => string;
}

export class FormError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

async function readForm(ctx: Ctx): Promise<URLSearchParams> {
  const type = String(ctx.get('content-type') ?? '');
  if (!type.startsWith('application/x-www-form-urlencoded'))
    throw new FormError(415, 'expected a form submission');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > MAX_FORM_BYTES) throw new FormError(413, 'form too large');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export function createInteractionRoutes(deps: InteractionDeps) {
  const { config } = deps;
  const secure = config.issuer.startsWith('https:');
  const csrfKey = sha256(`simptu.auth.csrf\0${config.cookieKeys[0]}`);
  const issuerPath = new URL(config.issuer).pathname.replace(/\/$/, '');
  const url = (p: string) => `${issuerPath}${p}`;

  function csrfCookie(ctx: Ctx): string {
    let v = ctx.cookies.get(CSRF_COOKIE);
    if (!v || !/^[A-Za-z0-9_-]{43}$/.test(v)) {
      v = randomBytes(32).toString('base64url');
      ctx.cookies.set(CSRF_COOKIE, v, {
        httpOnly: true,
        sameSite: 'lax',
        secure,
        path: issuerPath || '/',
        signed: false,
        overwrite: true,
      });
    }
    return v;
  }
  function csrfToken(ctx: Ctx, purpose: string): string {
    return createHmac('sha256', csrfKey)
      .update(`${csrfCookie(ctx)}\0${purpose}`)
      .digest('base64url');
  }
  function checkCsrf(ctx: Ctx, form: URLSearchParams, purpose: string): void {
    const cookie = ctx.cookies.get(CSRF_COOKIE);
    const field = form.get('csrf') ?? '';
    if (!cookie)
      throw new FormError(403, 'Your session expired or cookies are blocked. Go back and try again.');
    const expected = createHmac('sha256', csrfKey).update(`${cookie}\0${purpose}`).digest();
    const got = Buffer.from(field, 'base64url');
    if (got.length !== expected.length || !timingSafeEqual(got, expected))
      throw new FormError(403, 'The form could not be verified (CSRF). Go back and try again.');
  }

  function html(ctx: Ctx, body: string, status = 200): void {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = body;
  }

  async function tenantOr404(name: string): Promise<TenantInfo> {
    const t = isValidTenantName(name) ? await deps.clients.tenant(name) : undefined;
    if (!t) throw new FormError(404, 'This organization does not exist.');
    return t;
  }

  // ---- login -------------------------------------------------------------------------------

  async function interactionTenant(ctx: Ctx, uid: string) {
    const details = await deps.provider().interactionDetails(ctx.req, ctx.res);
    if (details.uid !== uid)
      throw new FormError(400, 'This sign-in link does not match your browser session.');
    const clientId = String(details.params.client_id ?? '');
    const tenantName = tenantOfWebClientId(clientId);
    const tenant = tenantName ? await deps.clients.tenant(tenantName) : undefined;
    if (!tenant) throw new FormError(400, 'This application is not registered.');
    return { details, tenant };
  }

  function renderLogin(
    ctx: Ctx,
    uid: string,
    tenant: TenantInfo,
    extra: { email?: string; error?: string; status?: number } = {},
  ) {
    html(
      ctx,
      loginPage({
        brand: tenant.displayName,
        action: url(`/interaction/${uid}/login`),
        csrf: csrfToken(ctx, `login:${uid}`),
        forgotUrl: url(`/t/${tenant.name}/forgot`),
        abortUrl: url(`/interaction/${uid}/abort`),
        ...(extra.email !== undefined ? { email: extra.email } : {}),
        ...(extra.error !== undefined ? { error: extra.error } : {}),
      }),
      extra.status,
    );
  }

  async function showInteraction(ctx: Ctx, uid: string) {
    const { details, tenant } = await interactionTenant(ctx, uid);
    if (details.prompt.name === 'login') return renderLogin(ctx, uid, tenant);
    deps.logger.debug({ prompt: details.prompt }, 'interaction without a page');
    // No consent screen for first-party clients (loadExistingGrant grants it); anything else
    // left to resolve is finished as is.
    const redirectTo = await deps
      .provider()
      .interactionResult(ctx.req, ctx.res, {}, { mergeWithLastSubmission: true });
    ctx.status = 303;
    ctx.redirect(redirectTo);
  }

  async function submitLogin(ctx: Ctx, uid: string) {
    const form = await readForm(ctx);
    checkCsrf(ctx, form, `login:${uid}`);
    const { details, tenant } = await interactionTenant(ctx, uid);
    if (details.prompt.name !== 'login') throw new FormError(400, 'There is nothing to sign in for.');
    const email = (form.get('email') ?? '').trim();
    const password = form.get('password') ?? '';
    const ip = deps.clientIp(ctx);
    const c = config.login;

    const perIp = await deps.limiter.hit('login-ip', ip, c.maxAttemptsPerIp, c.windowSec);
    if (!perIp.allowed) {
      ctx.set('retry-after', String(perIp.retryAfterSec));
      return renderLogin(ctx, uid, tenant, {
        email,
        status: 429,
        error: `Too many sign-in attempts. Try again in ${Math.ceil(perIp.retryAfterSec / 60)} minutes.`,
      });
    }
    const account = RateLimiter.account(tenant.name, email);
    const locked = await deps.limiter.lockedFor(account);
    if (locked > 0) {
      ctx.set('retry-after', String(locked));
      return renderLogin(ctx, uid, tenant, {
        email,
        status: 429,
        error: `This account is locked after too many failed sign-ins. Try again in ${Math.ceil(locked / 60)} minutes, or reset your password.`,
      });
    }
    const result = await checkPassword(deps.db, tenant.name, email, password);
    if (!result.ok) {
      const lockedNow = await deps.limiter.recordFailure(account, {
        maxFailures: c.maxFailuresPerAccount,
        windowSec: c.windowSec,
        lockoutSec: c.lockoutSec,
      });
      if (lockedNow > 0)
        await audit(deps.db, { event: 'login.locked', tenant: tenant.name, ip, details: { account } });
      return renderLogin(ctx, uid, tenant, {
        email,
        status: 401,
        error:
          result.reason === 'disabled'
            ? 'This account is disabled.'
            : 'The e-mail address or the password is wrong.',
      });
    }
    await deps.limiter.recordSuccess(account);
    const redirectTo = await deps
      .provider()
      .interactionResult(
        ctx.req,
        ctx.res,
        { login: { accountId: result.user.id, amr: ['pwd'] } },
        { mergeWithLastSubmission: false },
      );
    ctx.status = 303;
    ctx.redirect(redirectTo);
  }

  async function abort(ctx: Ctx) {
    const redirectTo = await deps
      .provider()
      .interactionResult(
        ctx.req,
        ctx.res,
        { error: 'access_denied', error_description: 'the user cancelled the sign-in' },
        { mergeWithLastSubmission: false },
      );
    ctx.status = 303;
    ctx.redirect(redirectTo);
  }

  // ---- invitations -------------------------------------------------------------------------

  async function showInvite(ctx: Ctx, tenant: TenantInfo, error?: string, status = 200) {
    const token = String(ctx.query.token ?? '');
    const inv = await deps.tenants.run(tenant, (d) => findInvitationByToken(d, token));
    if (!inv || inv.status !== 'pending') {
      const why = !inv
        ? 'This invitation link is not valid.'
        : inv.status === 'expired'
          ? 'This invitation has expired. Ask for a new one.'
          : 'This invitation was already used or withdrawn.';
      return html(
        ctx,
        messagePage({ title: 'Invitation', brand: tenant.displayName, message: why }),
        inv ? 410 : 404,
      );
    }
    html(
      ctx,
      setPasswordPage({
        title: 'Accept the invitation',
        brand: tenant.displayName,
        action: url(`/t/${tenant.name}/invite?token=${encodeURIComponent(token)}`),
        csrf: csrfToken(ctx, `invite:${tenant.name}`),
        intro: `You are invited to ${tenant.displayName} as ${inv.role}. Choose a password to create your account.`,
        askEmail: inv.email === null,
        ...(inv.email ? { email: inv.email } : {}),
        ...(error ? { error } : {}),
      }),
      status,
    );
  }

  async function acceptInvite(ctx: Ctx, tenant: TenantInfo) {
    const form = await readForm(ctx);
    checkCsrf(ctx, form, `invite:${tenant.name}`);
    const token = String(ctx.query.token ?? '');
    const password = form.get('password') ?? '';
    if (password !== (form.get('password2') ?? ''))
      return showInvite(ctx, tenant, 'The two passwords differ.', 400);
    const problem = passwordProblem(password);
    if (problem) return showInvite(ctx, tenant, problem, 400);
    // One transaction in the tenant's schema: accept (single use: one conditional UPDATE) then
    // create the user. The user lives in auth.users (platform side), so it is created inside
    // the same callback and the invitation's acceptance rolls back if that fails.
    let outcome: { ok: true; email: string } | { ok: false; message: string; status: number };
    try {
      outcome = await deps.tenants.run(tenant, async (d) => {
        const inv = await findInvitationByToken(d, token);
        if (!inv) return { ok: false as const, message: 'This invitation link is not valid.', status: 404 };
        const email = inv.email ?? normalizeLoginEmail(form.get('email') ?? '');
        if (!email) return { ok: false as const, message: 'Enter a valid e-mail address.', status: 400 };
        const user = await createUser(deps.db, {
          tenant: tenant.name,
          email,
          password,
          roles: [inv.role],
          invitationId: inv.id,
        });
        try {
          await acceptInvitation(d, token, { acceptedBy: user.id });
        } catch (err) {
          await deps.db.query('DELETE FROM auth.users WHERE id = $1', [user.id]);
          throw err;
        }
        await audit(deps.db, {
          event: 'invitation.accepted',
          tenant: tenant.name,
          subject: user.id,
          details: { invitationId: inv.id, role: inv.role },
        });
        return { ok: true as const, email };
      });
    } catch (err) {
      if (err instanceof UserExistsError)
        outcome = {
          ok: false,
          status: 409,
          message: 'An account with this e-mail address exists already. Sign in instead.',
        };
      else if (err instanceof SimptuError && err.statusCode < 500)
        outcome = {
          ok: false,
          status: err.statusCode,
          message:
            err.statusCode === 410
              ? 'This invitation has expired. Ask for a new one.'
              : 'This invitation was already used or withdrawn.',
        };
      else throw err;
    }
    if (!outcome.ok)
      return html(
        ctx,
        messagePage({ title: 'Invitation', brand: tenant.displayName, message: outcome.message }),
        outcome.status,
      );
    html(
      ctx,
      messagePage({
        title: 'Welcome',
        brand: tenant.displayName,
        message: `Your account ${outcome.email} is ready. Sign in from ${tenant.displayName}'s app.`,
      }),
      201,
    );
  }

  // ---- password reset ----------------------------------------------------------------------

  async function requestReset(ctx: Ctx, tenant: TenantInfo) {
    const form = await readForm(ctx);
    checkCsrf(ctx, form, `forgot:${tenant.name}`);
    const ip = deps.clientIp(ctx);
    const perIp = await deps.limiter.hit(
      'reset-ip',
      ip,
      config.login.maxAttemptsPerIp,
      config.login.windowSec,
    );
    if (!perIp.allowed)
      return html(
        ctx,
        messagePage({
          title: 'Reset your password',
          brand: tenant.displayName,
          message: 'Too many requests. Try again later.',
        }),
        429,
      );
    const email = form.get('email') ?? '';
    const user = await findUserByEmail(deps.db, tenant.name, email);
    if (user && user.status === 'active') {
      const token = randomBytes(32).toString('base64url');
      await deps.db.query(
        `INSERT INTO auth.password_resets (token_hash, user_id, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))`,
        [sha256(token), user.id, config.ttl.passwordResetSec],
      );
      const link = `${config.issuer}/t/${tenant.name}/reset?token=${token}`;
      await deps.mailer.send(
        passwordResetMessage(
          user.email,
          tenant.displayName,
          link,
          Math.round(config.ttl.passwordResetSec / 60),
        ),
      );
      await audit(deps.db, { event: 'password_reset.requested', tenant: tenant.name, subject: user.id, ip });
    }
    // The same answer whether or not the address has an account.
    html(
      ctx,
      messagePage({
        title: 'Check your e-mail',
        brand: tenant.displayName,
        message: 'If an account exists for this address, we sent it a link to choose a new password.',
      }),
      202,
    );
  }

  async function resetRow(token: string, tenant: string) {
    if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return undefined;
    const { rows } = await deps.db.query<{ user_id: string; email: string }>(
      `SELECT r.user_id, u.email FROM auth.password_resets r JOIN auth.users u ON u.id = r.user_id
        WHERE r.token_hash = $1 AND u.tenant = $2 AND r.used_at IS NULL AND r.expires_at > now()`,
      [sha256(token), tenant],
    );
    return rows[0];
  }

  async function showReset(ctx: Ctx, tenant: TenantInfo, error?: string, status = 200) {
    const token = String(ctx.query.token ?? '');
    const row = await resetRow(token, tenant.name);
    if (!row)
      return html(
        ctx,
        messagePage({
          title: 'Reset your password',
          brand: tenant.displayName,
          message: 'This link is not valid any more. Ask for a new one.',
          link: { href: url(`/t/${tenant.name}/forgot`), text: 'Send a new link' },
        }),
        410,
      );
    html(
      ctx,
      setPasswordPage({
        title: 'Choose a new password',
        brand: tenant.displayName,
        action: url(`/t/${tenant.name}/reset?token=${encodeURIComponent(token)}`),
        csrf: csrfToken(ctx, `reset:${tenant.name}`),
        intro: `For ${row.email}.`,
        ...(error ? { error } : {}),
      }),
      status,
    );
  }

  async function doReset(ctx: Ctx, tenant: TenantInfo) {
    const form = await readForm(ctx);
    checkCsrf(ctx, form, `reset:${tenant.name}`);
    const token = String(ctx.query.token ?? '');
    const password = form.get('password') ?? '';
    if (password !== (form.get('password2') ?? ''))
      return showReset(ctx, tenant, 'The two passwords differ.', 400);
    const problem = passwordProblem(password);
    if (problem) return showReset(ctx, tenant, problem, 400);
    // Single use: the conditional UPDATE is the claim.
    const { rows } = await deps.db.query<{ user_id: string; email: string }>(
      `UPDATE auth.password_resets r SET used_at = now() FROM auth.users u
        WHERE r.token_hash = $1 AND u.id = r.user_id AND u.tenant = $2 AND r.used_at IS NULL AND r.expires_at > now()
        RETURNING r.user_id, u.email`,
      [sha256(token), tenant.name],
    );
    const row = rows[0];
    if (!row) return showReset(ctx, tenant);
    await setPassword(deps.db, row.user_id, password);
    await deps.limiter.unlock(RateLimiter.account(tenant.name, row.email));
    await audit(deps.db, {
      event: 'password_reset.completed',
      tenant: tenant.name,
      subject: row.user_id,
      ip: deps.clientIp(ctx),
    });
    html(
      ctx,
      messagePage({
        title: 'Password changed',
        brand: tenant.displayName,
        message: 'Your password is changed. Sign in with it from the app.',
      }),
    );
  }

  // ---- routing -----------------------------------------------------------------------------

  return async function interactionRoutes(ctx: Ctx, next: Next): Promise<unknown> {
    const path = ctx.path.slice(issuerPath.length) || '/';
    let m: RegExpExecArray | null;
    const handle = async (fn: () => Promise<void>) => {
      ctx.set('cache-control', 'no-store');
      ctx.set(
        'content-security-policy',
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'",
      );
      ctx.set('x-frame-options', 'DENY');
      ctx.set('referrer-policy', 'no-referrer');
      try {
        await fn();
      } catch (err) {
        if (err instanceof FormError) {
          html(ctx, messagePage({ title: 'Sorry', message: err.message }), err.status);
          return;
        }
        const e = err as { name?: string; status?: number; message?: string };
        // oidc-provider: the interaction cookie is gone or the interaction expired.
        if (e.name === 'SessionNotFound' || e.status === 400) {
          html(
            ctx,
            messagePage({
              title: 'Sorry',
              message: 'This sign-in has expired. Go back to the app and start again.',
            }),
            400,
          );
          return;
        }
        deps.logger.error({ err }, 'interaction failed');
        html(
          ctx,
          messagePage({ title: 'Sorry', message: 'Something went wrong on our side. Try again.' }),
          500,
        );
      }
    };
    if ((m = /^\/interaction\/([A-Za-z0-9_-]{1,64})$/.exec(path)) && ctx.method === 'GET')
      return handle(() => showInteraction(ctx, m![1]!));
    if ((m = /^\/interaction\/([A-Za-z0-9_-]{1,64})\/login$/.exec(path)) && ctx.method === 'POST')
      return handle(() => submitLogin(ctx, m![1]!));
    if ((m = /^\/interaction\/([A-Za-z0-9_-]{1,64})\/abort$/.exec(path)) && ctx.method === 'GET')
      return handle(() => abort(ctx));
    if ((m = /^\/t\/([a-z0-9-]{3,40})\/(invite|forgot|reset)$/.exec(path))) {
      const [, name, page] = m as unknown as [string, string, 'invite' | 'forgot' | 'reset'];
      return handle(async () => {
        const tenant = await tenantOr404(name);
        const get = ctx.method === 'GET';
        if (!get && ctx.method !== 'POST') throw new FormError(405, 'Method not allowed.');
        if (page === 'invite') return get ? showInvite(ctx, tenant) : acceptInvite(ctx, tenant);
        if (page === 'reset') return get ? showReset(ctx, tenant) : doReset(ctx, tenant);
        if (get)
          return html(
            ctx,
            forgotPage({
              brand: tenant.displayName,
              action: url(`/t/${tenant.name}/forgot`),
              csrf: csrfToken(ctx, `forgot:${tenant.name}`),
            }),
          );
        return requestReset(ctx, tenant);
      });
    }
    return next();
  };
}
