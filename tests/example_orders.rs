//! The README's example function, `examples/orders/orders.rs`, added as README "Add your own
//! function" says (its folder next to the app's, one line in the list) and driven through
//! the real server in both host modes: the partner's identity and body reach it, it calls a
//! partner API on real TLS with the app's certificate, and everything else is refused.

#[path = "support/app.rs"]
mod app_support;
#[path = "../examples/orders/orders.rs"]
mod orders;

use app_support::{app_root, client, repo_root, App, Partner, Pki, APP_CN, PARTNER_CN};
use serde_json::{json, Value};

/// The app's functions plus `orders`, with `examples/orders/function.json` as its folder.
async fn app_with_orders(pki: &Pki, partner: Option<&Partner>) -> App {
    let function_json =
        std::fs::read_to_string(repo_root().join("examples/orders/function.json")).unwrap();
    let root = app_root(&[("orders", function_json)]);
    let url = partner.map(|p| p.url("/partner/orders"));
    let env = pki.settings(root.path(), url.as_deref());
    let mut functions = mtls_handler::functions::all();
    functions.push(orders::function());
    App::start(functions, root, &env).await
}

fn json_mode_request(cert: Option<&str>, method: &str, body: &str) -> Value {
    let mut headers = json!({ "Content-Type": ["application/json"] });
    if let Some(c) = cert {
        headers["X-ARR-ClientCert"] = json!([c]);
    }
    json!({
        "Url": "https://app.azurewebsites.net/api/orders", "Method": method,
        "Query": {}, "Params": {}, "Headers": headers, "Identities": [], "Body": body,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_places_an_order_that_is_passed_on_with_the_apps_certificate_in_both_modes() {
    let pki = Pki::new();
    let partner = Partner::start(&pki, 202).await;
    let app = app_with_orders(&pki, Some(&partner)).await;
    let cert = pki.caller.header_value();

    let res = client()
        .post(app.url("/api/orders"))
        .header("X-ARR-ClientCert", &cert)
        .json(&json!({"sku": "ABC-1", "quantity": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let placed: Value = res.json().await.unwrap();
    assert_eq!(placed["placedBy"], PARTNER_CN, "{placed}");
    assert_eq!(
        (&placed["sku"], &placed["quantity"]),
        (&json!("ABC-1"), &json!(3))
    );
    assert_eq!(placed["forwardedStatus"], 202);
    assert_eq!(
        location,
        format!("/api/orders/{}", placed["orderId"].as_str().unwrap())
    );

    let out = app
        .invoke(
            "orders",
            json_mode_request(Some(&cert), "POST", r#"{"sku": "XYZ-9", "quantity": 1}"#),
        )
        .await;
    assert_eq!(out.status, 201, "{:?}", out.body);
    assert_eq!(out.body["placedBy"], PARTNER_CN);
    assert_eq!(out.body["sku"], "XYZ-9");
    assert!(out.headers["location"]
        .as_str()
        .unwrap()
        .starts_with("/api/orders/ord-"));

    let received = partner.received();
    assert_eq!(received.len(), 2, "{received:?}");
    for (r, sku) in received.iter().zip(["ABC-1", "XYZ-9"]) {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/partner/orders")
        );
        assert_eq!(
            r.client_cn.as_deref(),
            Some(APP_CN),
            "the app's own certificate"
        );
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        let sent: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (&sent["sku"], &sent["placedBy"]),
            (&json!(sku), &json!(PARTNER_CN))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_api_that_refuses_the_order_is_a_502_with_its_status() {
    let pki = Pki::new();
    let partner = Partner::start(&pki, 409).await;
    let app = app_with_orders(&pki, Some(&partner)).await;
    let res = client()
        .post(app.url("/api/orders"))
        .header("X-ARR-ClientCert", pki.caller.header_value())
        .json(&json!({"sku": "ABC-1", "quantity": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (&body["code"], &body["statusCode"]),
        (&json!("remote_error_status"), &json!(409))
    );
}

#[tokio::test]
async fn orders_are_refused_without_a_certificate_with_the_wrong_method_or_a_bad_body() {
    let pki = Pki::new();
    let app = app_with_orders(&pki, None).await;
    let cert = pki.caller.header_value();
    let post = |body: &'static str, cert: Option<String>| {
        let mut req = client().post(app.url("/api/orders")).body(body);
        if let Some(c) = cert {
            req = req.header("X-ARR-ClientCert", c);
        }
        req.send()
    };
    let cases: [(Option<&str>, &str, &str, u16, &str); 5] = [
        (
            None,
            "POST",
            r#"{"sku": "A", "quantity": 1}"#,
            403,
            "missing",
        ),
        (Some(&cert), "GET", "", 405, "method_not_allowed"),
        (Some(&cert), "POST", "not json", 400, "invalid_body"),
        (
            Some(&cert),
            "POST",
            r#"{"sku": "A", "quantity": 1, "price": 0}"#,
            400,
            "invalid_body",
        ),
        (
            Some(&cert),
            "POST",
            r#"{"sku": "A", "quantity": 0}"#,
            422,
            "invalid_order",
        ),
    ];
    for (c, method, body, status, code) in cases {
        let res = if method == "GET" {
            client()
                .get(app.url("/api/orders"))
                .header("X-ARR-ClientCert", c.unwrap_or_default())
                .send()
                .await
                .unwrap()
        } else {
            post(body.to_owned().leak(), c.map(str::to_owned))
                .await
                .unwrap()
        };
        assert_eq!(res.status(), status, "{method} {body}");
        assert_eq!(res.json::<Value>().await.unwrap()["code"], code);
        let out = app
            .invoke("orders", json_mode_request(c, method, body))
            .await;
        assert_eq!(
            (out.status, out.body["code"].as_str()),
            (status, Some(code)),
            "JSON mode {method} {body}"
        );
    }
    // Without REMOTE_API_URL the order is only recorded.
    let res = post(r#"{"sku": "A", "quantity": 1}"#, Some(cert))
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(
        res.json::<Value>().await.unwrap()["forwardedStatus"],
        Value::Null
    );
}
