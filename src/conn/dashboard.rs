//! The dashboard over HTTP: its page (`GET /admin` and the files below
//! it, see [`crate::admin`]) and the time series of one metric
//! (`GET /api/stats/history?metric=NAME`, behind the admin token).
//!
//! Runs on the connection's first thread, as the rest of the HTTP API
//! ([`super::api`], whose table routes here). The page's files hold no
//! data; the history asks the router, which owns the series.

use serde_json::json;

use super::Shared;
use super::api::{ROUTER_TIMEOUT, bad, ok, unavailable};
use super::http::{Request, Response};
use crate::admin::{self, Access};
use crate::analytics;
use crate::auth::AdminCheck;
use crate::inbox::Input;

/// `GET /admin` and its files: 404 when the dashboard is off.
pub(super) fn page(request: &Request, shared: &Shared) -> Response {
    if !shared.config.admin_ui {
        return Response::error(404, "not_found", "The dashboard is off (--no-admin-ui)");
    }
    let Some(asset) = admin::asset(&request.path) else {
        let message = format!("Nothing at {}", request.path);
        return Response::error(404, "not_found", &message);
    };
    let access = match shared.auth.admin(None) {
        AdminCheck::Allowed => Access::Open,
        AdminCheck::Locked => Access::Locked,
        AdminCheck::Refused => Access::Token,
    };
    admin::HEADERS.iter().fold(
        Response::text(200, asset.content_type, admin::body(asset, access)),
        |response, (name, value)| response.with_header(name, *value),
    )
}

/// `GET /api/stats/history?metric=NAME`: one metric's last five minutes
/// by the second and last hour by the minute. An unknown or missing
/// metric is a 400 that names every one.
pub(super) fn history(request: &Request, shared: &Shared) -> Response {
    let metric = match request.query_param("metric") {
        Ok(Some(metric)) => metric,
        Ok(None) => {
            let names = analytics::metric_names();
            return bad(&format!("Give ?metric=NAME, one of: {names}"));
        }
        Err(broken) => return bad(broken.0),
    };
    let Some(index) = analytics::metric_named(&metric) else {
        let names = analytics::metric_names();
        return bad(&format!("Unknown metric {metric:?}: use one of {names}"));
    };
    let answer = shared.inbox.ask(
        |reply| Input::History {
            metric: index,
            reply,
        },
        Some(ROUTER_TIMEOUT),
    );
    match answer {
        Some(Some(history)) => ok(json!(history)),
        _ => unavailable(),
    }
}
