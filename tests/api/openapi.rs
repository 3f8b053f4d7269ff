//! `GET /openapi.json` against the live router, both ways: every route the
//! router labels is documented, every documented operation is routed and
//! answers one of its documented statuses and content types, and every other
//! method on a documented path is a 405 whose `Allow` lists exactly the
//! documented methods.

use serde_json::Value;
use sessiond::http::error::ErrorCode;

use crate::helpers::*;

const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "PATCH"];

/// No such user: the admin operations answer without changing anything.
const ABSENT_ID: &str = "999999";

fn media_type(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The response object of `status`, with a `$ref` to a shared response
/// resolved.
fn response<'a>(doc: &'a Value, op: &'a Value, status: u16) -> Option<&'a Value> {
    let r = op["responses"].get(status.to_string())?;
    match r["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next()?;
            doc["components"]["responses"].get(name)
        }
        None => Some(r),
    }
}

#[tokio::test]
async fn the_description_covers_every_route_of_the_router() {
    let app = spawn_app().await;
    let r = app.request("GET", "/openapi.json", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(media_type(r.header("content-type")), "application/json");
    let doc = r.body;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "not OpenAPI 3: {}",
        doc["openapi"]
    );

    // The error schema and the bearer scheme.
    let error = &doc["components"]["schemas"]["Error"];
    let required: Vec<&str> = error["required"]
        .as_array()
        .expect("Error.required")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(required.contains(&"error") && required.contains(&"message"));
    // The codes listed are the service's own, in its order.
    let codes: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode.enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let documented: Vec<&str> = ErrorCode::ALL
        .iter()
        .filter(|c| c.documented())
        .map(|c| c.as_str())
        .collect();
    assert_eq!(codes, documented);
    assert!(codes.contains(&"method_not_allowed") && !codes.contains(&"internal"));
    // Every error answer below carries a listed code, at that code's status.
    let listed = |status: u16, body: &Value, label: &str| {
        if status < 400 {
            return;
        }
        let code = body["error"].as_str().unwrap_or_default();
        let known = ErrorCode::ALL.iter().find(|c| c.as_str() == code);
        assert!(codes.contains(&code), "{label}: {code} is not listed");
        assert_eq!(
            known.map(|c| c.status().as_u16()),
            Some(status),
            "{label}: {code}"
        );
    };
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(bearer["type"], "http");
    assert_eq!(bearer["scheme"], "bearer");

    let paths = doc["paths"].as_object().expect("paths");

    // Every route the router labels in its metrics is documented.
    for route in sessiond::metrics::ROUTES {
        if route != "other" {
            assert!(
                paths.contains_key(route),
                "{route} is not in the description"
            );
        }
    }

    for (path, item) in paths {
        let concrete = path.replace("{id}", ABSENT_ID);
        let documented: Vec<&str> = METHODS
            .into_iter()
            .filter(|m| item.get(m.to_lowercase()).is_some())
            .collect();
        assert!(!documented.is_empty(), "{path} has no operation");
        for method in METHODS {
            let Some(op) = item.get(method.to_lowercase()) else {
                let r = app.request(method, &concrete, None, None).await;
                r.assert_error(405, "method_not_allowed");
                listed(r.status, &r.body, &format!("{method} {path}"));
                assert_eq!(
                    r.header("allow"),
                    Some(documented.join(", ").as_str()),
                    "{method} {path}"
                );
                continue;
            };
            let label = format!("{method} {path}");
            let statuses = op["responses"].as_object().expect("responses");
            let secured = op["security"].to_string().contains("bearer");

            // The statuses the structure of the route implies.
            if secured {
                for s in ["400", "401", "503"] {
                    assert!(statuses.contains_key(s), "{label} lacks {s}");
                }
                let anonymous = app.request(method, &concrete, None, None).await;
                anonymous.assert_error(401, "invalid_token");
                listed(anonymous.status, &anonymous.body, &label);
            }
            if path.starts_with("/api/admin/") {
                assert!(secured, "{label} is not secured");
                assert!(statuses.contains_key("403"), "{label} lacks 403");
            }
            if path.contains("{id}") {
                assert!(statuses.contains_key("404"), "{label} lacks 404");
            }
            if op.get("requestBody").is_some() {
                assert!(statuses.contains_key("413"), "{label} lacks 413");
                assert!(statuses.contains_key("415"), "{label} lacks 415");
            }

            // Routed, with a documented status and content type. Logging
            // out spends a token of its own.
            let token = if path == "/api/auth/logout" {
                app.login_ok(ADMIN_EMAIL, ADMIN_PASSWORD).await
            } else {
                app.admin_token.clone()
            };
            let r = app.request(method, &concrete, Some(&token), None).await;
            assert!(
                !(r.status == 404 && r.body["message"] == "no such route") && r.status != 405,
                "{label} is not routed: {} {}",
                r.status,
                r.text
            );
            listed(r.status, &r.body, &label);
            let documented_response = response(&doc, op, r.status)
                .unwrap_or_else(|| panic!("{label} answered undocumented {}", r.status));
            match documented_response.get("content") {
                Some(content) => {
                    let media = media_type(r.header("content-type"));
                    assert!(
                        content.get(&media).is_some(),
                        "{label} answered {media}, documented {content}"
                    );
                }
                None => assert!(
                    r.text.is_empty(),
                    "{label}: a body where none is documented"
                ),
            }
        }
    }
    app.stop().await;
}
