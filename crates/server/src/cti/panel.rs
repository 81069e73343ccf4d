//! The operator panel's static files (`web/`), compiled into the binary, with the security
//! headers every panel response carries: a strict Content-Security-Policy (scripts and styles
//! only from this server, no inline code, `frame-ancestors` from the configuration so a CRM
//! may embed the panel), `nosniff`, no referrer.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::AppState;

const INDEX_HTML: &str = include_str!("../../../../web/index.html");
const APP_JS: &str = include_str!("../../../../web/app.js");
const I18N_JS: &str = include_str!("../../../../web/i18n.js");
const APP_CSS: &str = include_str!("../../../../web/app.css");
const ICON_SVG: &str = include_str!("../../../../web/icon.svg");

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/panel/") }))
        .route("/panel", get(|| async { Redirect::temporary("/panel/") }))
        .route("/panel/", get(index))
        .route("/panel/app.js", get(app_js))
        .route("/panel/i18n.js", get(i18n_js))
        .route("/panel/app.css", get(app_css))
        .route("/panel/icon.svg", get(icon))
}

/// The CSP for panel pages.
pub(crate) fn content_security_policy(frame_ancestors: &[String]) -> String {
    let ancestors = if frame_ancestors.is_empty() {
        "'none'".to_owned()
    } else {
        frame_ancestors.join(" ")
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         media-src 'self' blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
         form-action 'self'; object-src 'none'; frame-ancestors {ancestors}"
    )
}

fn respond(state: &AppState, content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let csp = content_security_policy(&state.cti.config().frame_ancestors);
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn index(State(state): State<AppState>) -> Response {
    respond(&state, "text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js(State(state): State<AppState>) -> Response {
    respond(&state, "text/javascript; charset=utf-8", APP_JS)
}

async fn i18n_js(State(state): State<AppState>) -> Response {
    respond(&state, "text/javascript; charset=utf-8", I18N_JS)
}

async fn app_css(State(state): State<AppState>) -> Response {
    respond(&state, "text/css; charset=utf-8", APP_CSS)
}

async fn icon(State(state): State<AppState>) -> Response {
    respond(&state, "image/svg+xml", ICON_SVG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_forbids_inline_code_and_names_the_allowed_frame_ancestors() {
        let csp =
            content_security_policy(&["'self'".to_owned(), "https://crm.example.com".to_owned()]);
        assert!(csp.contains("script-src 'self';"));
        assert!(!csp.contains("unsafe-inline"));
        assert!(csp.ends_with("frame-ancestors 'self' https://crm.example.com"));
        assert!(content_security_policy(&[]).ends_with("frame-ancestors 'none'"));
    }

    #[test]
    fn the_panel_never_uses_inner_html() {
        // Caller and CRM text must be inserted as text; the panel's code uses textContent.
        for forbidden in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!APP_JS.contains(forbidden), "app.js uses {forbidden}");
            assert!(!I18N_JS.contains(forbidden), "i18n.js uses {forbidden}");
        }
        assert!(!INDEX_HTML.contains("<script>"), "no inline scripts");
        for handler in [
            " onclick=",
            " onload=",
            " onerror=",
            " oninput=",
            " onsubmit=",
            " onchange=",
        ] {
            assert!(
                !INDEX_HTML.contains(handler),
                "no inline event handlers ({handler})"
            );
        }
    }
}
