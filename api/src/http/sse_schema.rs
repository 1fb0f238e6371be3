//! How the OpenAPI document describes a Server-Sent Events stream: each
//! item of a `text/event-stream` answer is an event — its `event` name and
//! its `data` text, here JSON of a named schema — not the JSON itself (the
//! OpenAPI 3.2 reading, which schemathesis checks every event against).

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// An event named `event` whose data is JSON of the schema `data`.
fn event(event: &str, data: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "event",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([event])),
        )
        .property(
            "data",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .content_media_type("application/json")
                .content_schema(Some(Ref::from_schema_name(data))),
        )
        .required("data")
        .into()
}

/// `GET /orders/events`: `status` events, each a `PositionResponse`.
pub struct StatusEvent;

impl PartialSchema for StatusEvent {
    fn schema() -> RefOr<Schema> {
        event("status", "PositionResponse")
    }
}

impl ToSchema for StatusEvent {}

/// `GET /flash-sales/{saleId}/live`: `overview` events, each a
/// `QueueOverview`.
pub struct OverviewEvent;

impl PartialSchema for OverviewEvent {
    fn schema() -> RefOr<Schema> {
        event("overview", "QueueOverview")
    }
}

impl ToSchema for OverviewEvent {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_its_name_and_its_json_text() {
        let schema = serde_json::to_value(OverviewEvent::schema()).unwrap_or_default();
        assert_eq!(schema["properties"]["event"]["enum"][0], "overview");
        assert_eq!(schema["properties"]["data"]["type"], "string");
        assert_eq!(
            schema["properties"]["data"]["contentSchema"]["$ref"],
            "#/components/schemas/QueueOverview"
        );
        assert_eq!(schema["required"][0], "data");
    }
}
