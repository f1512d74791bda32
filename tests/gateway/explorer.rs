//! The API explorer at `/docs`: Swagger UI served from the binary (no download, no CDN), reading
//! the gateway's own `/v1/openapi.json`.

use sqlx::PgPool;

use crate::helpers::spawn_app;

#[sqlx::test]
async fn the_api_explorer_is_served_from_the_binary_and_reads_our_document(pool: PgPool) {
    let app = spawn_app(pool).await;
    let get = |path: &str| app.http.get(app.url(path)).send();
    let page = get("/docs/").await.expect("sent");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    for asset in ["swagger-ui-bundle.js", "swagger-ui.css"] {
        assert!(html.contains(asset), "the page loads {asset}");
        let file = get(&format!("/docs/{asset}")).await.expect("sent");
        assert_eq!(file.status(), 200, "{asset} is in the binary");
        assert!(
            file.bytes().await.expect("body").len() > 10_000,
            "{asset} is whole"
        );
    }
    // Nothing from elsewhere: a locker site may have no internet.
    for line in html
        .lines()
        .filter(|l| l.contains("src=") || l.contains("href="))
    {
        assert!(
            !line.contains("http://") && !line.contains("https://"),
            "an outside asset: {line}"
        );
    }
    let init = get("/docs/swagger-initializer.js").await.expect("sent");
    assert_eq!(init.status(), 200);
    assert!(init.text().await.expect("js").contains("/v1/openapi.json"));
}
