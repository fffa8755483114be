/**
 * Server-rendered HTML (DESIGN §7: plain pages that work without JavaScript). Every interpolated
 * value goes through `escapeHtml`; pages carry no script at all, and the service sends a CSP
 * that forbids scripts and framing (see interactions.ts).
 */

export function escapeHtml(value: unknown): string {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const STYLE = `body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0}
main{max-width:24rem;margin:8vh auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}
h1{font-size:1.3rem;margin:0 0 .3rem}p.brand{color:#555;margin:0 0 1.5rem}
label{display:block;margin:.8rem 0 .2rem}input{width:100%;box-sizing:border-box;padding:.55rem;font-size:1rem}
button{margin-top:1.2rem;width:100%;padding:.65rem;font-size:1rem;background:#2452d6;color:#fff;border:0;border-radius:4px}
.error{background:#fde8e8;color:#8a1111;padding:.6rem;border-radius:4px}.note{color:#555;font-size:.9rem}
a{color:#2452d6}`;

export interface Page {
  title: string;
  /** the tenant's display name (branding), when known */
  brand?: string;
  body: string;
}

export function layout(p: Page): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(p.title)}${p.brand ? ` · ${escapeHtml(p.brand)}` : ''}</title><style>${STYLE}</style></head>
<body><main><h1>${escapeHtml(p.title)}</h1>${p.brand ? `<p class="brand">${escapeHtml(p.brand)}</p>` : ''}
${p.body}</main></body></html>`;
}

function errorBox(error?: string): string {
  return error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : '';
}

export function loginPage(o: {
  brand: string;
  action: string;
  csrf: string;
  email?: string;
  error?: string;
  forgotUrl: string;
  abortUrl: string;
}): string {
  return layout({
    title: 'Sign in',
    brand: o.brand,
    body: `${errorBox(o.error)}
<form method="post" action="${escapeHtml(o.action)}" autocomplete="on">
<input type="hidden" name="csrf" value="${escapeHtml(o.csrf)}">
<label for="email">E-mail</label><input id="email" name="email" type="email" required autofocus value="${escapeHtml(o.email ?? '')}">
<label for="password">Password</label><input id="password" name="password" type="password" required autocomplete="current-password">
<button type="submit">Sign in</button></form>
<p class="note"><a href="${escapeHtml(o.forgotUrl)}">Forgot your password?</a> · <a href="${escapeHtml(o.abortUrl)}">Cancel</a></p>`,
  });
}

export function setPasswordPage(o: {
  title: string;
  brand: string;
  action: string;
  csrf: string;
  intro: string;
  email?: string;
  askEmail?: boolean;
  error?: string;
}): string {
  return layout({
    title: o.title,
    brand: o.brand,
    body: `${errorBox(o.error)}<p>${escapeHtml(o.intro)}</p>
<form method="post" action="${escapeHtml(o.action)}">
<input type="hidden" name="csrf" value="${escapeHtml(o.csrf)}">
${
  o.askEmail
    ? `<label for="email">E-mail</label><input id="email" name="email" type="email" required value="${escapeHtml(o.email ?? '')}">`
    : ''
}
<label for="password">New password</label><input id="password" name="password" type="password" minlength="10" required autocomplete="new-password">
<label for="password2">Repeat it</label><input id="password2" name="password2" type="password" minlength="10" required autocomplete="new-password">
<button type="submit">Save password</button></form>`,
  });
}

export function forgotPage(o: { brand: string; action: string; csrf: string; error?: string }): string {
  return layout({
    title: 'Reset your password',
    brand: o.brand,
    body: `${errorBox(o.error)}<p>We'll e-mail you a link to choose a new password.</p>
<form method="post" action="${escapeHtml(o.action)}">
<input type="hidden" name="csrf" value="${escapeHtml(o.csrf)}">
<label for="email">E-mail</label><input id="email" name="email" type="email" required>
<button type="submit">Send the link</button></form>`,
  });
}

export function messagePage(o: {
  title: string;
  brand?: string;
  message: string;
  link?: { href: string; text: string };
}): string {
  return layout({
    title: o.title,
    ...(o.brand ? { brand: o.brand } : {}),
    body: `<p>${escapeHtml(o.message)}</p>${
      o.link ? `<p><a href="${escapeHtml(o.link.href)}">${escapeHtml(o.link.text)}</a></p>` : ''
    }`,
  });
}
