//! Inbound Bitrix24 events: `ONEXTERNALCALLSTART`, a user clicked a phone number in the CRM.
//!
//! Bitrix24 POSTs a form (`event=…&data[CALL_ID]=…&auth[application_token]=…`) to the handler
//! URL configured for the application or outgoing webhook. The handler checks the
//! `application_token`, drops repeats of the same `CALL_ID` within 30 seconds (Bitrix24 can
//! deliver an event twice), answers 200 at once (Bitrix24 throttles slow handlers and never
//! retries), and hands a [`ClickToCall`] to the channel given to [`router`].
//!
//! Who executes it: the binary (`kommutator::click_to_call`). The contract for the consumer:
//! originate agent-first from `extension` to `phone`; the call is **already registered** in
//! Bitrix24 as `b24_call_id`, so the connector must only finish it: store the link from the
//! PBX call id to `b24_call_id` (`Storage::link_crm_call`) before originating, and the
//! connector finishes that `CALL_ID` instead of registering. This module does no originate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use directory::phone::{normalize, Normalized, Region};
use tokio::sync::mpsc;

/// How long a `CALL_ID` is remembered to drop repeated deliveries.
const DEDUP_WINDOW: Duration = Duration::from_secs(30);

/// A click-to-call request from Bitrix24.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickToCall {
    /// The connector instance that received it.
    pub connector: String,
    /// Bitrix24's `CALL_ID`, already registered: finish it, do not register again.
    pub b24_call_id: String,
    /// The Bitrix24 user who clicked.
    pub user_id: u64,
    /// That user's extension: from the connector's user map, else the event's `EXTENSION`;
    /// `None` when neither has one.
    pub extension: Option<String>,
    /// The number to dial: E.164 when it could be normalized, else as Bitrix24 sent it.
    pub phone: String,
    /// `LINE_NUMBER`: the outgoing line the user chose.
    pub line_number: Option<String>,
    /// The CRM entity the click came from (`CONTACT`, `797`).
    pub crm_entity: Option<(String, String)>,
}

/// What the event endpoint needs.
#[derive(Debug, Clone)]
pub struct EventSettings {
    /// Connector instance name.
    pub connector: String,
    /// The `application_token` saved at install (or shown in the outgoing webhook settings).
    pub application_token: String,
    /// Bitrix24 user id → extension.
    pub extensions: HashMap<u64, String>,
    /// Region for normalizing the number.
    pub region: Region,
}

#[derive(Clone)]
struct EventState {
    settings: Arc<EventSettings>,
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    commands: mpsc::Sender<ClickToCall>,
}

/// The event endpoint as a router with one route, `POST /`; the binary nests it (e.g. under
/// `/hooks/bitrix24/<connector>`).
pub fn router(settings: EventSettings, commands: mpsc::Sender<ClickToCall>) -> Router {
    let state = EventState {
        settings: Arc::new(settings),
        seen: Arc::new(Mutex::new(HashMap::new())),
        commands,
    };
    Router::new().route("/", post(handle)).with_state(state)
}

/// Compares in time independent of where the strings differ.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses the event form into a [`ClickToCall`]; `Err` is the HTTP answer to give.
pub fn parse_event(
    body: &[u8],
    settings: &EventSettings,
) -> Result<Option<ClickToCall>, (StatusCode, &'static str)> {
    let fields: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let token = fields
        .get("auth[application_token]")
        .map(String::as_str)
        .unwrap_or("");
    if settings.application_token.is_empty() || !same_secret(token, &settings.application_token) {
        return Err((StatusCode::FORBIDDEN, "application_token does not match\n"));
    }
    match fields.get("event").map(|e| e.to_ascii_uppercase()) {
        Some(event) if event == "ONEXTERNALCALLSTART" => {}
        // Other events are acknowledged and ignored: Bitrix24 would not retry them anyway.
        _ => return Ok(None),
    }
    let get = |key: &str| {
        fields
            .get(&format!("data[{key}]"))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let (Some(b24_call_id), Some(user_id), Some(raw_phone)) = (
        get("CALL_ID"),
        get("USER_ID").and_then(|u| u.parse::<u64>().ok()),
        get("PHONE_NUMBER_INTERNATIONAL").or_else(|| get("PHONE_NUMBER")),
    ) else {
        return Err((
            StatusCode::BAD_REQUEST,
            "CALL_ID, USER_ID and PHONE_NUMBER are required\n",
        ));
    };
    let phone = match normalize(&raw_phone, settings.region) {
        Normalized::E164(number) => number.to_string(),
        _ => raw_phone,
    };
    Ok(Some(ClickToCall {
        connector: settings.connector.clone(),
        b24_call_id,
        user_id,
        // The connector's user map first; else the `EXTENSION` Bitrix24 sends (the user's
        // internal number, when set in the portal).
        extension: settings
            .extensions
            .get(&user_id)
            .cloned()
            .or_else(|| get("EXTENSION")),
        phone,
        line_number: get("LINE_NUMBER"),
        crm_entity: get("CRM_ENTITY_TYPE").zip(get("CRM_ENTITY_ID")),
    }))
}

async fn handle(State(state): State<EventState>, body: Bytes) -> (StatusCode, &'static str) {
    let command = match parse_event(&body, &state.settings) {
        Ok(Some(command)) => command,
        Ok(None) => return (StatusCode::OK, "ignored\n"),
        Err(answer) => {
            tracing::warn!(connector = %state.settings.connector, status = answer.0.as_u16(), "A Bitrix24 event was refused.");
            return answer;
        }
    };
    {
        let Ok(mut seen) = state.seen.lock() else {
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
        };
        let now = Instant::now();
        seen.retain(|_, at| now.duration_since(*at) < DEDUP_WINDOW);
        if seen.insert(command.b24_call_id.clone(), now).is_some() {
            return (StatusCode::OK, "duplicate\n");
        }
    }
    match state.commands.try_send(command) {
        Ok(()) => (StatusCode::OK, "ok\n"),
        Err(_) => {
            tracing::error!(connector = %state.settings.connector, "Click-to-call from Bitrix24 dropped: nobody executes calls or the queue is full.");
            (StatusCode::SERVICE_UNAVAILABLE, "busy\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    fn settings() -> EventSettings {
        EventSettings {
            connector: "b24".to_owned(),
            application_token: "51610fefc120afg4b628cc82d6298cce".to_owned(),
            extensions: HashMap::from([(1269, "101".to_owned())]),
            region: Region::parse("RU").expect("RU"),
        }
    }

    const BODY: &str = "event=ONEXTERNALCALLSTART&event_handler_id=1055&data%5BPHONE_NUMBER%5D=8%20916%20123-45-67\
&data%5BUSER_ID%5D=1269&data%5BLINE_NUMBER%5D=74951112233&data%5BCALL_ID%5D=externalCall.8935.1773236989\
&data%5BCRM_ENTITY_TYPE%5D=CONTACT&data%5BCRM_ENTITY_ID%5D=797&ts=1773236988&auth%5Bdomain%5D=acme.bitrix24.ru\
&auth%5Bapplication_token%5D=51610fefc120afg4b628cc82d6298cce";

    #[test]
    fn the_documented_event_becomes_a_click_to_call() {
        let command = parse_event(BODY.as_bytes(), &settings())
            .expect("accepted")
            .expect("a command");
        assert_eq!(
            command,
            ClickToCall {
                connector: "b24".to_owned(),
                b24_call_id: "externalCall.8935.1773236989".to_owned(),
                user_id: 1269,
                extension: Some("101".to_owned()),
                phone: "+79161234567".to_owned(),
                line_number: Some("74951112233".to_owned()),
                crm_entity: Some(("CONTACT".to_owned(), "797".to_owned())),
            }
        );
    }

    #[test]
    fn a_wrong_token_is_refused() {
        let body = BODY.replace("51610fefc120afg4b628cc82d6298cce", "forged");
        assert_eq!(
            parse_event(body.as_bytes(), &settings()).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
        let empty = EventSettings {
            application_token: String::new(),
            ..settings()
        };
        assert_eq!(
            parse_event(BODY.as_bytes(), &empty).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
    }

    #[tokio::test]
    async fn repeats_are_delivered_once() {
        let (tx, mut rx) = mpsc::channel(8);
        let app = router(settings(), tx);
        for _ in 0..2 {
            let request = axum::http::Request::post("/")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(axum::body::Body::from(BODY))
                .expect("request");
            let response = app.clone().oneshot(request).await.expect("response");
            assert_eq!(response.status(), StatusCode::OK);
        }
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err(), "the repeat was dropped");
    }
}
