//! The OpenAPI document (served at `/openapi.json`, browsable at `/docs`),
//! generated from the handlers' `#[utoipa::path]` annotations so it cannot
//! drift from the routes.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
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
        auth::signup,
        auth::signin,
        auth::signout,
        ops::healthz,
        ops::readyz,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth),
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
