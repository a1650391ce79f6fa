//! `docker events`: the daemon's event bus and `GET /events`. Events are kept in a bounded ring
//! (the last [`RING`], replayed for `since`) and fanned out live through a bounded broadcast
//! channel: a client that falls more than [`CHANNEL`] events behind skips the ones it missed
//! (Docker drops too), so no client holds up another or the engine.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use engine::events::{Event, EventSink};
use tokio::sync::broadcast;

use crate::api::error::ApiError;
use crate::api::events::{EventFilter, parse_timestamp, to_json};
use crate::routes::AppState;

/// Events kept for replay (`since`).
pub const RING: usize = 1024;
/// Live events a client may fall behind by before it skips some.
pub const CHANNEL: usize = 256;

/// The bus: cheap to clone, shared by the engine's sink and every handler.
#[derive(Clone, Debug)]
pub struct Events {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ring: Mutex<VecDeque<Arc<Event>>>,
    live: broadcast::Sender<Arc<Event>>,
}

impl Default for Events {
    fn default() -> Self {
        Events::new()
    }
}

impl Events {
    /// An empty bus.
    pub fn new() -> Events {
        Events {
            inner: Arc::new(Inner {
                ring: Mutex::new(VecDeque::with_capacity(RING)),
                live: broadcast::channel(CHANNEL).0,
            }),
        }
    }

    /// Records `ev` and sends it to every live subscriber. Never blocks on a client.
    pub fn publish(&self, ev: Event) {
        let ev = Arc::new(ev);
        // The ring and the send happen under one lock, so a subscriber sees each event
        // either in its replay or live, never both or neither.
        let mut ring = self.inner.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() >= RING {
            ring.pop_front();
        }
        ring.push_back(ev.clone());
        // No subscriber is not an error.
        let _ = self.inner.live.send(ev);
    }

    /// A sink for the engine that publishes here.
    pub fn sink(&self) -> EventSink {
        let bus = self.clone();
        EventSink::new(move |ev| bus.publish(ev))
    }

    /// The kept events that pass `keep`, oldest first, and a receiver of every later one.
    pub fn subscribe(
        &self,
        keep: impl Fn(&Event) -> bool,
    ) -> (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>) {
        let ring = self.inner.ring.lock().unwrap_or_else(|p| p.into_inner());
        let past = ring.iter().filter(|e| keep(e)).cloned().collect();
        (past, self.inner.live.subscribe())
    }
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn line(ev: &Event) -> Result<Bytes, std::convert::Infallible> {
    Ok(Bytes::from(format!("{}\n", to_json(ev))))
}

/// `GET /events?since=&until=&filters=`: kept events since `since` (none without it), then
/// live ones until `until` or until the client goes; an `until` in the past replays and ends.
pub async fn events(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let since = parse_timestamp(q.get("since").map(String::as_str), "since")?;
    let until = parse_timestamp(q.get("until").map(String::as_str), "until")?;
    if let (Some(s), Some(u)) = (since, until) {
        if u < s {
            return Err(ApiError::bad(format!(
                "invalid until {:?}: it is before since {:?}",
                q["until"], q["since"]
            )));
        }
    }
    let filter = EventFilter::parse(q.get("filters").map(String::as_str))?;
    let now = now_nanos();
    let (past, rx) = st.events.subscribe(|ev| {
        since.is_some_and(|s| ev.time_nano >= s)
            && until.is_none_or(|u| ev.time_nano <= u)
            && filter.matches(ev)
    });
    let past = futures::stream::iter(past.into_iter().map(|ev| line(&ev)));
    if until.is_some_and(|u| u <= now) {
        drop(rx);
        return Ok(respond(Body::from_stream(past)));
    }
    let deadline = until
        .map(|u| tokio::time::Instant::now() + Duration::from_nanos(u.saturating_sub(now) as u64));
    let live = futures::stream::unfold((rx, filter), move |(mut rx, filter)| async move {
        loop {
            let next = match deadline {
                Some(d) => tokio::select! {
                    r = rx.recv() => r,
                    () = tokio::time::sleep_until(d) => return None,
                },
                None => rx.recv().await,
            };
            match next {
                Ok(ev) if filter.matches(&ev) && until.is_none_or(|u| ev.time_nano <= u) => {
                    return Some((line(&ev), (rx, filter)));
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(skipped = n, "an events client fell behind");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(respond(Body::from_stream(futures::StreamExt::chain(
        past, live,
    ))))
}

fn respond(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use engine::events::Kind;

    use super::*;

    fn ev(n: usize) -> Event {
        Event::new(Kind::Volume, "create", format!("v{n}"), BTreeMap::new())
    }

    #[test]
    fn ring_is_bounded_and_replay_then_live_is_gapless() {
        let bus = Events::new();
        for n in 0..RING + 10 {
            bus.publish(ev(n));
        }
        let (past, mut rx) = bus.subscribe(|_| true);
        assert_eq!(past.len(), RING);
        assert_eq!(past[0].actor_id, "v10", "the oldest went first");
        bus.sink().send(ev(9999));
        assert_eq!(rx.try_recv().unwrap().actor_id, "v9999");
        let (odd, _) = bus.subscribe(|e| e.actor_id.ends_with('1'));
        assert!(odd.iter().all(|e| e.actor_id.ends_with('1')));
    }

    #[test]
    fn a_slow_subscriber_skips_and_goes_on() {
        let bus = Events::new();
        let (_, mut rx) = bus.subscribe(|_| true);
        for n in 0..CHANNEL + 5 {
            bus.publish(ev(n));
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(5))
        ));
        assert_eq!(rx.try_recv().unwrap().actor_id, "v5");
    }
}
