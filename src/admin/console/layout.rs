//! The page shell every console page shares: head, header bar with the
//! logout button, the flash message, the stylesheet and the script. maud
//! escapes every interpolated value, so message fields (subjects, names,
//! headers) are always text, never markup.

use super::session::{Current, Flash};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// One page: `title`, the logged-in session (for the logout form), an
/// optional flash, and the content.
pub fn page(title: &str, user: Option<&Current>, flash: Option<Flash>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · mxgate quarantine" }
                style { (PreEscaped(CSS)) }
                script src="/console/app.js" defer {}
            }
            body {
                header.bar {
                    a.brand href="/console/" { "mxgate quarantine" }
                    @if let Some(u) = user {
                        form.logout method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(u.csrf);
                            span.who { (u.actor) }
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    @if let Some(f) = flash {
                        p.flash.ok[f.ok].warn[!f.ok] role="status" { (f.text) }
                    }
                    (content)
                }
            }
        }
    }
}

/// A page that only says something (not found, forbidden...).
pub fn notice(code: StatusCode, title: &str, text: &str, user: Option<&Current>) -> Response {
    let body = html! {
        h1 { (title) }
        p { (text) }
        p { a href="/console/" { "Back to the quarantine" } }
    };
    (code, page(title, user, None, body)).into_response()
}

/// `2026-11-26 09:46` (UTC).
pub fn when(unix: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} {}", &s[..10], &s[11..16])
}

/// `812 B`, `14.2 KB`, `3.1 MB`.
pub fn size(n: u64) -> String {
    match n {
        0..1000 => format!("{n} B"),
        1000..1_000_000 => format!("{:.1} KB", n as f64 / 1e3),
        _ => format!("{:.1} MB", n as f64 / 1e6),
    }
}

/// Served at /console/app.js, so the pages' CSP needs no inline script:
/// "select all", and a confirm() before every form marked `data-confirm`.
pub const JS: &str = r#"'use strict';
document.addEventListener('DOMContentLoaded', function () {
  var boxes = function () { return document.querySelectorAll('input[name=id]'); };
  var all = document.getElementById('select-all');
  if (all) all.addEventListener('change', function () {
    boxes().forEach(function (b) { b.checked = all.checked; });
  });
  document.querySelectorAll('form[data-confirm]').forEach(function (form) {
    form.addEventListener('submit', function (e) {
      var button = e.submitter;
      var what = (button && button.dataset.confirm) || form.dataset.confirm;
      if (form.getAttribute('id') === 'bulk') { // not form.id: the checkboxes named id shadow it
        var every = form.querySelector('input[name=all_matching]');
        var n = Array.prototype.filter.call(boxes(), function (b) { return b.checked; }).length;
        if (every && every.checked) what += ' every message matching this search?';
        else if (n === 0) { e.preventDefault(); alert('Select messages first.'); return; }
        else what += ' ' + n + ' selected message' + (n === 1 ? '' : 's') + '?';
      }
      if (!window.confirm(what)) e.preventDefault();
    });
  });
});
"#;

const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;background:#f4f6f9}
a{color:#1f5fbf}
.bar{display:flex;align-items:center;justify-content:space-between;gap:1em;padding:.6em 1em;background:#1d2b45;color:#fff}
.bar .brand{color:#fff;font-weight:600;text-decoration:none;white-space:nowrap}
.bar .who{opacity:.75;margin-right:.6em;font-size:.9em}
.logout{display:flex;align-items:center}
main{max-width:1200px;margin:0 auto;padding:1em}
h1{font-size:1.35em;margin:.3em 0 .7em}
h2{font-size:1.1em;margin:1.4em 0 .5em}
.flash{padding:.6em .9em;border-radius:6px;border:1px solid}
.flash.ok{background:#e7f6ec;border-color:#8fd1a3}
.flash.warn{background:#fff4e0;border-color:#f0c36d}
.error{background:#fdecec;border:1px solid #f1a5a5;padding:.6em .9em;border-radius:6px}
button,.button{font:inherit;white-space:nowrap;padding:.4em .9em;border-radius:6px;border:1px solid #9aa6b8;background:#fff;color:#1d2330;cursor:pointer;text-decoration:none;display:inline-block}
button.primary{background:#1f5fbf;border-color:#1f5fbf;color:#fff}
button.danger{background:#b3261e;border-color:#b3261e;color:#fff}
input,select{font:inherit;padding:.35em .5em;border:1px solid #9aa6b8;border-radius:6px;max-width:100%}
.search{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:.6em;background:#fff;padding:.8em;border-radius:8px;border:1px solid #dde3ea}
.search label{display:flex;flex-direction:column;font-size:.85em;color:#4a5568}
.search .go{align-self:end}
.actions{display:flex;flex-wrap:wrap;gap:.5em;align-items:center;margin:.8em 0}
.card{background:#fff;border:1px solid #dde3ea;border-radius:8px;padding:.8em;overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.45em .5em;border-bottom:1px solid #e6eaf0;vertical-align:top;overflow-wrap:break-word}
td.nowrap{white-space:nowrap}
th{font-size:.8em;text-transform:uppercase;letter-spacing:.03em;color:#5a6577}
.tag{display:inline-block;background:#eef1f6;border-radius:4px;padding:0 .35em;margin:0 .2em .2em 0;font-size:.82em;font-family:ui-monospace,monospace}
.status-held{color:#9a5b00}.status-released{color:#1e7a3c}.status-deleted,.status-expired{color:#777}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#fff;border:1px solid #dde3ea;border-radius:8px;padding:.8em;max-height:30em;overflow:auto}
iframe{width:100%;height:24em;border:1px solid #dde3ea;border-radius:8px;background:#fff}
dl.fields{display:grid;grid-template-columns:max-content 1fr;gap:.3em 1em;margin:0}
dl.fields dt{color:#5a6577}dl.fields dd{margin:0;overflow-wrap:anywhere}
.pager{margin:1em 0}
.login{max-width:24em;margin:3em auto;background:#fff;padding:1.4em;border-radius:8px;border:1px solid #dde3ea}
.login label{display:block;margin:.6em 0}.login input{width:100%}
@media (max-width:700px){
  main{padding:.6em}
  .bar .who{display:none}
  .search{grid-template-columns:1fr 1fr;padding:.6em}
  .search input,.search select{width:100%}
  td.nowrap{white-space:normal}
  table.list thead{display:none}
  table.list,table.list tbody{display:block}
  table.list tr{display:block;border:1px solid #dde3ea;border-radius:8px;margin-bottom:.6em;background:#fff;padding:.3em 0}
  table.list td{display:block;position:relative;border:none;padding:.2em .6em .2em 6.6em;min-height:1.8em}
  table.list td::before{content:attr(data-label);position:absolute;left:.6em;width:5.5em;color:#5a6577;font-size:.85em;line-height:1.7}
  .card.listing{padding:0;border:none;background:none}
  dl.fields{grid-template-columns:1fr}dl.fields dd{margin-bottom:.4em}
}
"#;

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::when(1_795_686_364), "2026-11-26 09:46");
        assert_eq!(super::size(812), "812 B");
        assert_eq!(super::size(14_200), "14.2 KB");
        assert_eq!(super::size(3_100_000), "3.1 MB");
    }
}
