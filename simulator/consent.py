"""The HTML a browser sees at the simulated front door: consent and error pages.

The consent form's elements have stable names and ids (``user``, ``decision`` with
``approve``/``deny``, ``request_id``) so that both a browser test and a plain HTTP
client can drive it. The pending request lives on the server; the form carries only
its id.
"""

from __future__ import annotations

from html import escape

from simulator.grants import ConsentRequest

DECISION_PATH = "/api/oauth/authorize/decision"
DEMO_USERS = ("alice", "bob", "carol")
SCOPE_DESCRIPTIONS = {
    "query:data": "Search the documents you have connected to SID",
    "offline_access": "Keep access when you are not using the application",
    "openid": "Know who you are",
    "profile": "See your name",
    "email": "See your email address",
}

STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; background: #f4f4f6; color: #1d1d22;
       display: grid; place-items: center; min-height: 100vh; margin: 0; }
main { background: #fff; border-radius: 12px; padding: 2rem 2.5rem; max-width: 26rem;
       box-shadow: 0 2px 12px rgba(0, 0, 0, .08); }
h1 { font-size: 1.3rem; margin-top: 0; }
label { display: block; font-weight: 600; margin-top: 1rem; }
input[type=text] { width: 100%; box-sizing: border-box; padding: .5rem;
                   font: inherit; border: 1px solid #bbb; border-radius: 6px; }
.actions { display: flex; gap: .75rem; justify-content: flex-end; margin-top: 1.5rem; }
button { font: inherit; padding: .5rem 1.2rem; border-radius: 6px; cursor: pointer;
         border: 1px solid #bbb; background: #fff; }
button#approve { background: #2f5bea; border-color: #2f5bea; color: #fff; }
.note { color: #666; font-size: .85rem; margin-bottom: 0; }
"""


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · SID simulator</title><style>{STYLE}</style>"
        f"</head><body><main>{body}</main></body></html>\n"
    )


def _scope_items(request: ConsentRequest) -> str:
    return "".join(
        f"<li>{escape(SCOPE_DESCRIPTIONS.get(scope, scope))} "
        f"(<code>{escape(scope)}</code>)</li>"
        for scope in request.scopes
    )


def consent_page(request: ConsentRequest) -> str:
    """Ask which SID account to connect, and whether to allow it."""
    options = "".join(f'<option value="{user}">' for user in DEMO_USERS)
    demo_names = ", ".join(DEMO_USERS)
    body = f"""
<h1>Connect <strong>{escape(request.client_id)}</strong> to SID</h1>
<p>The application asks to:</p>
<ul id="scopes">{_scope_items(request)}</ul>
<form id="consent" method="post" action="{DECISION_PATH}">
  <input type="hidden" name="request_id" value="{escape(request.id)}">
  <label for="user">SID account</label>
  <input type="text" id="user" name="user" value="{DEMO_USERS[0]}"
         list="demo-users" autocomplete="off" required>
  <datalist id="demo-users">{options}</datalist>
  <div class="actions">
    <button type="submit" id="deny" name="decision" value="deny"
            formnovalidate>Deny</button>
    <button type="submit" id="approve" name="decision" value="approve">Approve</button>
  </div>
</form>
<p class="note">This is the local SID simulator: demo accounts are
{demo_names}, and any other name works too.</p>
"""
    return _page("Authorize", body)


def error_page(message: str) -> str:
    """An error the browser must not be redirected with (spec §7)."""
    body = f'<h1>Oops, something went wrong</h1><p id="error">{escape(message)}</p>'
    return _page("Error", body)
