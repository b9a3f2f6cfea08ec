//! The HTTP surface: one `router()` per resource, merged once here and served under
//! `/api/v1` and, for the seed's existing front-ends, `/api`; health at the root; the
//! OpenAPI document and `/docs`; uploaded media; and the middleware every request passes.

pub mod auth;
pub mod auth_mail;
pub mod client;
pub mod contact;
pub mod dashboard;
pub mod doc;
pub mod events;
pub mod extract;
pub mod health;
pub mod notifications;
pub mod profile;
pub mod projects;
pub mod push;
pub mod serve;
pub mod tags;
pub mod tasks;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_http::LatencyUnit;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::Error;
use crate::realtime::SocketContext;
use crate::service::Services;

pub const TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");
pub const UNREAD_COUNT: HeaderName = HeaderName::from_static("x-unread-count");
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Largest JSON body accepted.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

pub use crate::config::HttpSettings;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "taskstream",
        description = "Real-time task-management API. Every route below is also served under `/api` in place of `/api/v1`.",
    ),
    paths(health::health, health::live),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "tasks", description = "Tasks, with soft delete and restore"),
        (name = "notifications", description = "What happened to the account and its tasks"),
        (name = "profile", description = "Profile fields and photo"),
        (name = "events", description = "The user's event stream (also live over the WebSocket at /api/v1/ws, see protocol/asyncapi.yaml)"),
        (name = "contact", description = "The public contact form"),
        (name = "push", description = "Web push subscriptions of the user's browsers"),
        (name = "projects", description = "Shared projects: members and roles, invitations; their tasks are under /tasks (project_id) and their streams on the socket (protocol/)"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

fn api_routes() -> OpenApiRouter<Services> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(auth_mail::router())
        .merge(tasks::router())
        .merge(tags::router())
        .merge(notifications::router())
        .merge(profile::router())
        .merge(events::router())
        .merge(contact::router())
        .merge(push::router())
        .merge(projects::router())
}

/// The OpenAPI document, as served at `/api/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut openapi = OpenApiRouter::<Services>::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", api_routes())
        .into_openapi();
    document_rate_limits(&mut openapi);
    document_common_errors(&mut openapi);
    document_empty_query_values(&mut openapi);
    document_links(&mut openapi);
    profile::document_at_least_one_field(&mut openapi);
    openapi
}

/// Links from an answer that names a resource to the operations on it: what a client (and
/// the stateful fuzzer) may call next with the id it was given.
fn document_links(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::link::LinkBuilder;
    use utoipa::openapi::RefOr;

    // (operation giving ids, its answer, where the id is, operations taking it as `id`)
    let links: [(&str, &str, &str, &[&str]); 5] = [
        (
            "create_task",
            "201",
            "$response.body#/id",
            &[
                "get_task",
                "replace_task",
                "patch_task",
                "complete_task",
                "delete_task",
                "restore_task",
            ],
        ),
        (
            "list_notifications",
            "200",
            "$response.body#/0/id",
            &[
                "get_notification",
                "update_notification",
                "delete_notification",
            ],
        ),
        (
            "list_sessions",
            "200",
            "$response.body#/0/id",
            &["end_session"],
        ),
        (
            "create_project",
            "201",
            "$response.body#/id",
            &[
                "get_project",
                "patch_project",
                "list_members",
                "list_project_invitations",
                "invite",
                "leave_project",
                "delete_project",
            ],
        ),
        (
            "my_invitations",
            "200",
            "$response.body#/0/id",
            &["accept_invitation", "decline_invitation"],
        ),
    ];
    for operation in api_operations(openapi) {
        let Some((_, status, id, targets)) = links
            .iter()
            .find(|(from, ..)| operation.operation_id.as_deref() == Some(*from))
        else {
            continue;
        };
        let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) else {
            continue;
        };
        for target in *targets {
            response.links.insert(
                (*target).to_string(),
                LinkBuilder::new()
                    .operation_id(*target)
                    .parameter("id", *id)
                    .build()
                    .into(),
            );
        }
    }
}

/// `parse_int` and `parse_bool` take an empty value (`?limit=`) as an absent one: every
/// integer and boolean query parameter says so with `allowEmptyValue`, a field utoipa's
/// `Parameter` has no member for (it is written beside the extensions, which are flattened).
fn document_empty_query_values(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::schema::{SchemaType, Type};
    use utoipa::openapi::{RefOr, Schema};

    for operation in api_operations(openapi) {
        let parameters = operation.parameters.iter_mut().flatten();
        for parameter in parameters {
            let RefOr::T(parameter) = parameter else {
                continue;
            };
            let scalar = matches!(
                &parameter.schema,
                Some(RefOr::T(Schema::Object(object)))
                    if matches!(object.schema_type, SchemaType::Type(Type::Integer | Type::Boolean))
            );
            if parameter.parameter_in == ParameterIn::Query && scalar {
                parameter
                    .extensions
                    .get_or_insert_with(Default::default)
                    .insert("allowEmptyValue".into(), serde_json::Value::Bool(true));
            }
        }
    }
}

/// Every API operation, for the document-wide modifiers below.
fn api_operations(
    openapi: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    openapi
        .paths
        .paths
        .iter_mut()
        .filter(|(path, _)| path.starts_with("/api/"))
        .flat_map(|(_, item)| {
            [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
        })
        .flatten()
}

/// The answers the extractors give on every route they guard, stated once: 401 wherever a
/// token is required, 413 and 415 wherever a JSON body is, 422 wherever a body or a
/// parameter can be invalid. An optional body is sent or left out, never `null`.
fn document_common_errors(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder, Schema};

    let error = |description: &str| -> RefOr<utoipa::openapi::Response> {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                    .build(),
            )
            .build()
            .into()
    };
    for operation in api_operations(openapi) {
        let authenticated = operation.security.as_ref().is_some_and(|s| !s.is_empty());
        let has_params = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
        let mut json_body = None;
        if let Some(RefOr::T(body)) = operation.request_body.as_mut() {
            let required = matches!(body.required, Some(Required::True));
            if let Some(RefOr::T(content)) = body.content.get_mut("application/json") {
                json_body = Some(required);
                if !required {
                    // `oneOf: [X, null]` -> `X`: no body at all is the optional case.
                    if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
                        let not_null: Vec<_> = one_of
                            .items
                            .iter()
                            .filter(|item| !is_null_schema(item))
                            .cloned()
                            .collect();
                        if let [only] = not_null.as_slice() {
                            content.schema = Some(only.clone());
                        }
                    }
                }
            }
        }
        let has_body = operation.request_body.is_some();
        let responses = &mut operation.responses.responses;
        if authenticated {
            responses.entry("401".into()).or_insert_with(|| {
                error("Not authenticated: no token (`AUTH_REQUIRED`), or a token that is invalid, expired or revoked (`INVALID_TOKEN`)")
            });
        }
        if json_body.is_some() {
            responses
                .entry("413".into())
                .or_insert_with(|| error("The body is larger than 1 MiB (`PAYLOAD_TOO_LARGE`)"));
        }
        if json_body == Some(true) {
            responses.entry("415".into()).or_insert_with(|| {
                error("The body is not sent as `application/json` (`UNSUPPORTED_MEDIA_TYPE`)")
            });
        }
        if has_body || has_params {
            responses.entry("422".into()).or_insert_with(|| {
                error("An invalid body or parameter (`VALIDATION_ERROR`, a `details` entry per field)")
            });
        }
    }
}

fn is_null_schema(schema: &utoipa::openapi::RefOr<utoipa::openapi::Schema>) -> bool {
    use utoipa::openapi::schema::{SchemaType, Type};
    matches!(
        schema,
        utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(object))
            if object.schema_type == SchemaType::Type(Type::Null)
    )
}

/// Every API operation may answer 429: each spends from a budget (the client address's,
/// the account's, or the route's own), so the document says so once for all of them.
fn document_rate_limits(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::header::Header;
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder, Type};

    let seconds = || Header::new(utoipa::openapi::ObjectBuilder::new().schema_type(Type::Integer));
    let limited = ResponseBuilder::new()
        .description("A rate limit is spent (`RATE_LIMITED`); retry after `Retry-After` seconds")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                .build(),
        )
        .header("Retry-After", seconds())
        .header("RateLimit-Limit", seconds())
        .header("RateLimit-Remaining", seconds())
        .header("RateLimit-Reset", seconds())
        .build();
    for operation in api_operations(openapi) {
        operation
            .responses
            .responses
            .entry("429".to_string())
            .or_insert_with(|| limited.clone().into());
    }
}

/// The whole application.
pub fn router(
    svc: Services,
    sockets: SocketContext,
    clients: client::ClientPolicy,
    settings: &HttpSettings,
) -> Router {
    let (v1, _) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", api_routes())
        .split_for_parts();
    let openapi = openapi();
    let (seed_compatible, _) = api_routes().split_for_parts();
    let media = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ))
        .service(ServeDir::new(svc.media.dir()));
    let hosts = Arc::new(AllowedHosts::new(&settings.allowed_hosts));
    let origins = Arc::new(ws::AllowedOrigins::new(&settings.allowed_origins));

    Router::new()
        .merge(v1)
        .nest(
            "/api/v1",
            ws::router(sockets.clone(), svc.limits.clone(), origins.clone()),
        )
        .nest(
            "/api",
            seed_compatible.merge(ws::router(sockets, svc.limits.clone(), origins)),
        )
        // The API's routes (added above) know their client and pass its rate limits.
        .layer(middleware::from_fn_with_state(
            clients,
            client::client_middleware,
        ))
        .merge(health::router())
        .merge(dashboard::router())
        .merge(SwaggerUi::new("/docs").url("/api/v1/openapi.json", openapi))
        .nest_service("/media", media)
        .fallback(not_found)
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(|_| {
                    Error::Internal(anyhow::anyhow!("request handler panicked")).into_response()
                }))
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_request(())
                        .on_response(
                            DefaultOnResponse::new()
                                .level(tracing::Level::INFO)
                                .latency_unit(LatencyUnit::Micros),
                        ),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(middleware::from_fn(crate::metrics::track_http))
                .layer(middleware::map_response(ensure_envelope))
                .layer(middleware::from_fn_with_state(hosts, check_host))
                .layer(cors(&settings.allowed_origins))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    settings.request_timeout,
                ))
                .layer(DefaultBodyLimit::max(MAX_JSON_BODY)),
        )
        .with_state(svc)
}

fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str);
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        path = %request.uri().path(),
        request_id,
    )
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|o| o.trim() == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim().trim_end_matches('/')).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([axum::http::header::AUTHORIZATION, CONTENT_TYPE, REQUEST_ID])
        .expose_headers([TOTAL_COUNT, UNREAD_COUNT, REQUEST_ID])
        .max_age(Duration::from_secs(3600))
}

/// The host names the server answers to; `None` accepts any.
struct AllowedHosts(Option<Vec<String>>);

impl AllowedHosts {
    fn new(hosts: &[String]) -> Self {
        let hosts: Vec<String> = hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if hosts.is_empty() || hosts.iter().any(|h| h == "*") {
            Self(None)
        } else {
            Self(Some(hosts))
        }
    }

    fn allows(&self, host_header: &str) -> bool {
        let Some(hosts) = &self.0 else {
            return true;
        };
        let host = host_header.trim().to_ascii_lowercase();
        // Strip the port: "[::1]:8080" -> "[::1]", "example.com:443" -> "example.com".
        let name = match host.rfind(':') {
            Some(i) if !host[i..].contains(']') => &host[..i],
            _ => host.as_str(),
        };
        hosts.iter().any(|allowed| {
            allowed == name
                || allowed == &host
                || allowed
                    .strip_prefix("*.")
                    .is_some_and(|suffix| name.ends_with(&format!(".{suffix}")))
        })
    }
}

async fn check_host(
    State(hosts): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    if hosts.allows(host) {
        next.run(request).await
    } else {
        Error::BadRequest("Invalid Host header".into()).into_response()
    }
}

async fn not_found() -> Error {
    Error::NotFound("No such route".into())
}

/// Responses made outside our handlers (405 from the router, 408 from the timeout, 413
/// from a body limit, 404 from the media folder) get the same envelope as ours.
async fn ensure_envelope(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return response;
    }
    let error = match status {
        StatusCode::NOT_FOUND => Error::NotFound("Not found".into()),
        StatusCode::METHOD_NOT_ALLOWED => {
            Error::MethodNotAllowed("Method not allowed on this route".into())
        }
        StatusCode::REQUEST_TIMEOUT => Error::Timeout("The request took too long".into()),
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge("Request body is too large".into()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            Error::UnsupportedMediaType("Unsupported content type".into())
        }
        StatusCode::UNAUTHORIZED => Error::AuthRequired,
        StatusCode::UNPROCESSABLE_ENTITY => {
            Error::invalid("body", "Request could not be processed")
        }
        StatusCode::SERVICE_UNAVAILABLE => Error::Unavailable("Service unavailable".into()),
        s if s.is_client_error() => Error::BadRequest("Bad request".into()),
        _ => Error::Internal(anyhow::anyhow!("unhandled {status} response")),
    };
    let (mut parts, _) = response.into_parts();
    let mut fixed = error.into_response();
    // Keep what the original response said about itself (Allow, Retry-After, ...).
    parts.headers.remove(CONTENT_TYPE);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    for (name, value) in parts.headers.drain().filter_map(|(n, v)| n.map(|n| (n, v))) {
        fixed.headers_mut().entry(name).or_insert(value);
    }
    *fixed.status_mut() = status;
    fixed
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`); absent means false.
pub fn parse_bool(raw: Option<&str>) -> Result<bool, String> {
    match raw.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => Ok(false),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(_) => Err("must be true or false".into()),
    }
}

/// An optional id (a UUID, hyphenated).
pub fn parse_id(raw: Option<&str>) -> Result<Option<uuid::Uuid>, String> {
    raw.map(|id| {
        let id = id.trim();
        match uuid::Uuid::try_parse(id) {
            Ok(uuid) if id.len() == 36 => Ok(uuid),
            _ => Err("must be a UUID (8-4-4-4-12 hexadecimal digits)".to_string()),
        }
    })
    .transpose()
}

/// An integer in `min..=max`, `default` when absent.
pub fn parse_int(raw: Option<&str>, default: i64, min: i64, max: i64) -> Result<i64, String> {
    let Some(raw) = raw.filter(|s| !s.is_empty()) else {
        return Ok(default);
    };
    match raw.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ if max == i64::MAX => Err(format!("must be an integer of at least {min}")),
        _ => Err(format!("must be an integer from {min} to {max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_with_and_without_ports() {
        let hosts = AllowedHosts::new(&["example.com".into(), "*.tasks.io".into(), "[::1]".into()]);
        assert!(hosts.allows("example.com"));
        assert!(hosts.allows("EXAMPLE.com:8080"));
        assert!(hosts.allows("eu.tasks.io"));
        assert!(hosts.allows("[::1]:8080"));
        assert!(!hosts.allows("tasks.io.evil.com"));
        assert!(!hosts.allows("evil.com"));
        assert!(AllowedHosts::new(&["*".into()]).allows("anything"));
    }

    #[test]
    fn query_numbers_and_flags() {
        assert_eq!(parse_int(None, 100, 1, 500), Ok(100));
        assert_eq!(parse_int(Some("5"), 100, 1, 500), Ok(5));
        assert!(parse_int(Some("0"), 100, 1, 500).is_err());
        assert!(parse_int(Some("501"), 100, 1, 500).is_err());
        assert!(parse_int(Some("abc"), 100, 1, 500).is_err());
        assert_eq!(parse_bool(Some("TRUE")), Ok(true));
        assert!(parse_bool(Some("maybe")).is_err());
    }
}
