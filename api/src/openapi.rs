//! The OpenAPI document (served at `/openapi.json`, browsable at `/docs`),
//! generated from the handlers' `#[utoipa::path]` annotations so it cannot
//! drift from the routes.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};
use crate::routes::{admin, auth, ops, order_events, orders, sales};
use crate::web;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "flashsale API",
        description = "Flash sales: a fair queue, timed holds, one unit per customer. \
                       Money is a decimal string with two places (\"49.99\"). Every error is \
                       `{ \"error\": { \"code\", \"message\" } }`."
    ),
    paths(
        sales::public_sale,
        sales::public_draw,
        web::open_sales,
        sales::list_sales,
        sales::get_sale,
        sales::create_sale,
        sales::update_sale,
        sales::delete_sale,
        sales::pause_sale,
        sales::resume_sale,
        orders::buy,
        orders::position,
        orders::confirm,
        orders::by_email,
        order_events::events,
        admin::list_orders,
        admin::queue_overview,
        admin::queue_members,
        crate::routes::admin_live::live,
        auth::signup,
        auth::signin,
        auth::signout,
        ops::healthz,
        ops::readyz,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth, &SharedResponses),
    tags(
        (name = "sales", description = "Flash sales: the public page and the admin catalogue"),
        (name = "orders", description = "The customer's path: queue, position, confirm, order"),
        (name = "admin", description = "Orders and queues for admins"),
        (name = "auth", description = "Admin accounts and tokens"),
        (name = "ops", description = "Health and readiness (metrics are on their own listener, METRICS_ADDR)"),
    )
)]
pub struct ApiDoc;

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

/// The answers every route can give whatever its handler does, added to
/// each operation here (once) instead of to every annotation: the JSON
/// error net turns a request the extractors refuse, an oversized or
/// non-JSON body, a timeout, a panic and a dependency outage into these.
struct SharedResponses;

impl SharedResponses {
    fn error(description: &str) -> RefOr<Response> {
        let body = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build();
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content("application/json", body)
                .build(),
        )
    }

    fn add(operation: &mut Operation) {
        let mut shared = vec![
            ("500", "internal: an unexpected error (details are logged, not sent)"),
            (
                "503",
                "unavailable, busy or timeout: Redis or MongoDB cannot be reached, the server is saturated, or the request took too long; retry",
            ),
        ];
        if operation.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
            shared.push(("400", "invalid input"));
        }
        if operation.request_body.is_some() {
            shared.extend([
                ("400", "invalid input"),
                ("413", "payload_too_large: the body is over the limit"),
                (
                    "415",
                    "unsupported_media_type: the body must be `application/json`",
                ),
            ]);
        }
        for (status, description) in shared {
            operation
                .responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| Self::error(description));
        }
    }
}

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                Self::add(operation);
            }
        }
    }
}
