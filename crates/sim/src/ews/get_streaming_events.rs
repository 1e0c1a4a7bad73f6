//! GetStreamingEvents — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/getstreamingevents-operation>
//!
//! Holds the HTTP answer open and streams it, chunked, as Exchange does: a series of complete
//! SOAP envelopes, each a `GetStreamingEventsResponse` — `ConnectionStatus` `OK` at once and
//! then as a keep-alive every simulated minute, a `Notifications` envelope as soon as events
//! happen in a subscribed calendar (within about 50 ms), and `ConnectionStatus` `Closed` after
//! `ConnectionTimeout` minutes, which ends the answer. At most 200 subscriptions per
//! connection. Subscriptions that cannot be used (unknown, lapsed, another account's, a pull
//! one) are answered at once with error messages listing them in `ErrorSubscriptionIds`, and
//! no stream; a subscription dropped while streaming (see [`super::notifications`]) ends the
//! stream with `ErrorSubscriptionNotFound`, lost events with `ErrorMissedNotificationEvents`.
//! While a connection carries a subscription, it does not lapse; it lives 30 minutes after.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body::Frame;

use super::notifications::{events_since, notification, Unusable};
use super::{schema_fault, Ctx, SoapFault};
use crate::ews_wire::envelope::{self, ServerVersionInfo, Status};
use crate::ews_wire::ops::get_streaming_events::{self, StreamMessage, MAX_SUBSCRIPTIONS};
use crate::ews_wire::xml::Node;
use crate::Simulator;

/// A response body fed from a channel: each message is one chunk.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

fn envelope_of(messages: &[StreamMessage]) -> Bytes {
    let xml = envelope::response(&ServerVersionInfo::exchange2019(), |w| {
        get_streaming_events::write_response(w, &messages.to_vec())
    });
    Bytes::from(xml)
}

fn error_message(code: &str, text: &str, ids: Vec<String>) -> StreamMessage {
    StreamMessage {
        status: Status::error(code, text),
        notifications: vec![],
        error_subscription_ids: ids,
        connection_status: None,
    }
}

fn xml(status: StatusCode, body: Body) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
    resp
}

pub(crate) fn respond(ctx: &Ctx, body: Node<'_, '_>) -> Result<Response, SoapFault> {
    let req = get_streaming_events::Request::parse(body).map_err(schema_fault)?;
    let registry = &ctx.sim.inner.ews_subscriptions;
    if registry.refuses_streaming() {
        return Err(SoapFault {
            code: "ErrorInvalidRequest",
            message: "The request is invalid: GetStreamingEvents is not supported by this server version.".into(),
        });
    }
    if req.subscription_ids.len() > MAX_SUBSCRIPTIONS {
        return Err(SoapFault {
            code: "ErrorInvalidRequest",
            message: format!("A streaming connection carries at most {MAX_SUBSCRIPTIONS} subscriptions."),
        });
    }
    // Every subscription must be usable; otherwise an answer listing those that are not.
    let mut refused: Vec<(&'static str, &'static str, Vec<String>)> = Vec::new();
    let mut refuse = |code: &'static str, text: &'static str, id: &str| match refused.iter_mut().find(|r| r.0 == code) {
        Some(r) => r.2.push(id.to_string()),
        None => refused.push((code, text, vec![id.to_string()])),
    };
    for id in &req.subscription_ids {
        match registry.usable(id, &ctx.account.username) {
            Ok(s) if !s.streaming => refuse(
                "ErrorInvalidSubscription",
                "The subscription is a pull subscription; read it with GetEvents.",
                id,
            ),
            Ok(_) => {}
            Err(e) => {
                let (code, text) = e.code_and_text();
                refuse(code, text, id);
            }
        }
    }
    if !refused.is_empty() {
        let messages: Vec<StreamMessage> =
            refused.into_iter().map(|(code, text, ids)| error_message(code, text, ids)).collect();
        return Ok(xml(StatusCode::OK, Body::from(envelope_of(&messages))));
    }
    let now = Instant::now();
    for id in &req.subscription_ids {
        registry.update(id, |s| {
            s.connections += 1;
            s.last_activity = now;
        });
    }
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    registry.open_streams.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let open = Open { sim: ctx.sim.clone(), ids: req.subscription_ids.clone() };
    tokio::spawn(stream(open, tx, registry.minute() * req.connection_timeout, registry.minute()));
    Ok(xml(StatusCode::OK, Body::new(ChannelBody(rx))))
}

/// The subscriptions a connection carries; when it ends (or its task is stopped), they
/// start their 30 minutes.
struct Open {
    sim: Simulator,
    ids: Vec<String>,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.sim.inner.ews_subscriptions.open_streams.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let now = Instant::now();
        for id in &self.ids {
            self.sim.inner.ews_subscriptions.update(id, |s| {
                s.connections = s.connections.saturating_sub(1);
                s.last_activity = now;
            });
        }
    }
}

async fn stream(open: Open, tx: tokio::sync::mpsc::Sender<Bytes>, timeout: Duration, keep_alive: Duration) {
    let started = Instant::now();
    let registry = &open.sim.inner.ews_subscriptions;
    if tx.send(envelope_of(&[StreamMessage::keep_alive()])).await.is_err() {
        return;
    }
    let mut last_sent = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut gone = Vec::new();
        let mut missed = Vec::new();
        let mut notifications = Vec::new();
        {
            let state = open.sim.inner.state.lock().unwrap();
            for id in &open.ids {
                match registry.get(id) {
                    None => gone.push(id.clone()),
                    Some(s) if s.missed => missed.push(id.clone()),
                    Some(s) => {
                        let (events, last, more) = events_since(&state, &s.mailbox, s.seq);
                        if !events.is_empty() {
                            notifications.push(notification(id, s.seq, events, more));
                            registry.update(id, |s| s.seq = last);
                        }
                    }
                }
            }
        }
        if !notifications.is_empty() {
            let m = StreamMessage { notifications, connection_status: None, ..StreamMessage::keep_alive() };
            if tx.send(envelope_of(&[m])).await.is_err() {
                return;
            }
            last_sent = Instant::now();
        }
        if !gone.is_empty() || !missed.is_empty() {
            let mut messages = Vec::new();
            if !gone.is_empty() {
                let (code, text) = Unusable::NotFound.code_and_text();
                messages.push(error_message(code, text, gone));
            }
            if !missed.is_empty() {
                for id in &missed {
                    registry.remove(id);
                }
                let (code, text) = Unusable::Missed.code_and_text();
                messages.push(error_message(code, text, missed));
            }
            let _ = tx.send(envelope_of(&messages)).await;
            return;
        }
        if started.elapsed() >= timeout {
            let _ = tx.send(envelope_of(&[StreamMessage::closed()])).await;
            return;
        }
        if last_sent.elapsed() >= keep_alive {
            if tx.send(envelope_of(&[StreamMessage::keep_alive()])).await.is_err() {
                return;
            }
            last_sent = Instant::now();
        }
    }
}
