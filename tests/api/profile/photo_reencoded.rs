//! Decompression bombs and what is stored: the pixel budget is checked from the header,
//! and a photo is stored re-encoded (metadata gone), scaled down, with a thumbnail.

use std::io::Cursor;

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder, ImageFormat};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use testkit::api::profile::{fetch_photo, get_profile, upload, upload_ok};
use testkit::api::{detail_fields, expect_error, expect_json};
use testkit::{Backend, TestApp};

use super::images::{image_bytes, png_chunk};
use super::{assert_served, media_files, thumbnail_files, thumbnail_url};
use crate::{backend_tests, per_backend};

backend_tests!(
    a_gigapixel_bomb_is_refused_and_nothing_is_stored,
    metadata_is_stripped_by_re_encoding,
    large_photos_are_scaled_down_with_a_thumbnail,
    the_thumbnail_goes_with_its_photo,
);

per_backend!(the_pixel_budget_is_configurable);

/// A real, decodable 8192x8192 grey PNG of a few hundred KB: 64 Mpx, 4x the default
/// budget, but within the old per-side bound and the old decoder memory limit.
fn bomb_png() -> Vec<u8> {
    let side = 8192u32;
    let pixels = vec![0u8; (side * side) as usize];
    let mut png = Vec::new();
    PngEncoder::new_with_quality(&mut png, CompressionType::Fast, FilterType::NoFilter)
        .write_image(&pixels, side, side, ExtendedColorType::L8)
        .unwrap();
    png
}

/// A `width` x `height` gradient in `format`.
fn picture(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
    let picture = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut buf = Vec::new();
    image::DynamicImage::ImageRgb8(picture)
        .write_to(&mut Cursor::new(&mut buf), format)
        .unwrap();
    buf
}

async fn a_gigapixel_bomb_is_refused_and_nothing_is_stored(app: TestApp) {
    let user = app.signup("Grace").await;
    let bomb = bomb_png();
    assert!(bomb.len() < 5 * 1024 * 1024, "bomb is {} bytes", bomb.len());
    let response = upload(&app, Some(&user.token), bomb, "bomb.png", "image/png").await;
    let envelope = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(detail_fields(&envelope), vec!["file"], "{envelope}");
    assert_eq!(
        get_profile(&app, &user).await["profile_photo_url"],
        Value::Null
    );
    assert!(media_files(&app).is_empty(), "{:?}", media_files(&app));
    assert!(
        thumbnail_files(&app).is_empty(),
        "{:?}",
        thumbnail_files(&app)
    );
}

async fn the_pixel_budget_is_configurable(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.media.photo_max_pixels = 100).await;
    let user = app.signup("Grace").await;
    // 16x12 = 192 pixels, over a budget of 100.
    let response = upload(
        &app,
        Some(&user.token),
        image_bytes(ImageFormat::Png),
        "me.png",
        "image/png",
    )
    .await;
    let envelope = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(detail_fields(&envelope), vec!["file"], "{envelope}");
    assert!(media_files(&app).is_empty(), "{:?}", media_files(&app));
    // 10x10 = 100 is within it.
    let small = picture(10, 10, ImageFormat::Png);
    let body = upload_ok(&app, &user, small.clone(), "small.png", "image/png").await;
    assert_served(
        &app,
        body["photo_url"].as_str().unwrap(),
        &small,
        "image/png",
    )
    .await;
}

async fn metadata_is_stripped_by_re_encoding(app: TestApp) {
    let user = app.signup("Grace").await;
    let secret = b"GPS 51.5007 N 0.1246 W";
    // A PNG with a tEXt chunk right after IHDR (8 bytes of magic + 25 of IHDR).
    let plain = image_bytes(ImageFormat::Png);
    let mut tagged = plain[..33].to_vec();
    let mut text = b"Comment\0".to_vec();
    text.extend_from_slice(secret);
    tagged.extend(png_chunk(b"tEXt", &text));
    tagged.extend_from_slice(&plain[33..]);
    let contains = |haystack: &[u8]| haystack.windows(secret.len()).any(|w| w == secret);
    assert!(contains(&tagged));
    assert!(image::load_from_memory(&tagged).is_ok());

    let body = upload_ok(&app, &user, tagged.clone(), "me.png", "image/png").await;
    let url = body["photo_url"].as_str().unwrap().to_string();
    assert_served(&app, &url, &tagged, "image/png").await;
    let (status, _, served) = fetch_photo(&app, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !contains(&served),
        "the stored photo keeps the upload's text"
    );
    let (_, _, thumb) = fetch_photo(&app, &thumbnail_url(&url)).await;
    assert!(!contains(&thumb), "the thumbnail keeps the upload's text");
    // Pixels survive (PNG is lossless).
    assert_eq!(
        image::load_from_memory(&served).unwrap().to_rgb8(),
        image::load_from_memory(&plain).unwrap().to_rgb8()
    );
}

async fn large_photos_are_scaled_down_with_a_thumbnail(app: TestApp) {
    let user = app.signup("Grace").await;
    for (format, name, mime) in [
        (ImageFormat::Png, "wide.png", "image/png"),
        (ImageFormat::Jpeg, "wide.jpg", "image/jpeg"),
    ] {
        let wide = picture(2000, 1000, format);
        let body = upload_ok(&app, &user, wide.clone(), name, mime).await;
        let url = body["photo_url"].as_str().unwrap().to_string();
        assert_eq!(
            body["thumbnail_url"],
            thumbnail_url(&url).as_str(),
            "{body}"
        );
        assert_served(&app, &url, &wide, mime).await;
        let (_, _, served) = fetch_photo(&app, &url).await;
        let stored = image::load_from_memory(&served).unwrap();
        assert_eq!((stored.width(), stored.height()), (1024, 512), "{name}");
        let (status, content_type, thumb) = fetch_photo(&app, &thumbnail_url(&url)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, mime);
        let thumb = image::load_from_memory(&thumb).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (128, 64), "{name}");
    }
}

async fn the_thumbnail_goes_with_its_photo(app: TestApp) {
    let user = app.signup("Grace").await;
    let first = upload_ok(
        &app,
        &user,
        image_bytes(ImageFormat::Png),
        "one.png",
        "image/png",
    )
    .await;
    let first_url = first["photo_url"].as_str().unwrap().to_string();
    let first_name = first_url.rsplit_once("/media/").unwrap().1.to_string();
    assert_eq!(thumbnail_files(&app), vec![first_name]);

    // Replaced: the old thumbnail goes with the old photo.
    let second = upload_ok(
        &app,
        &user,
        image_bytes(ImageFormat::Gif),
        "two.gif",
        "image/gif",
    )
    .await;
    let second_url = second["photo_url"].as_str().unwrap().to_string();
    let second_name = second_url.rsplit_once("/media/").unwrap().1.to_string();
    assert_eq!(thumbnail_files(&app), vec![second_name]);
    let (status, _, _) = fetch_photo(&app, &thumbnail_url(&first_url)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleted: so is its thumbnail.
    let response = app
        .api(Method::DELETE, "/profile/photo", Some(&user.token))
        .send()
        .await
        .unwrap();
    expect_json(response, StatusCode::OK).await;
    assert!(
        thumbnail_files(&app).is_empty(),
        "{:?}",
        thumbnail_files(&app)
    );
    let (status, _, _) = fetch_photo(&app, &thumbnail_url(&second_url)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
