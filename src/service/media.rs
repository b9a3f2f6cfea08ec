//! Profile photos: validated from their bytes (never the name or declared type), checked
//! against a pixel budget from the header before anything is decoded, decoded a few at a
//! time on the blocking pool, and stored re-encoded (which drops every metadata chunk, EXIF
//! included) at a bounded size with a small thumbnail, in MEDIA_DIR under random names.
//! The bytes a client sent are never stored or served.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::cpu::CpuPool;
use crate::error::{Error, Result};

/// Largest photo accepted.
pub const MAX_PHOTO_BYTES: usize = 5 * 1024 * 1024;
/// Largest width or height accepted, whatever the pixel budget; larger images are refused
/// before being decoded.
const MAX_DIMENSION: u32 = 8_192;
/// Longest side of the stored photo; larger uploads are scaled down to it.
pub const STORED_MAX_SIDE: u32 = 1_024;
/// Longest side of the stored thumbnail.
pub const THUMBNAIL_MAX_SIDE: u32 = 128;
/// The subfolder of MEDIA_DIR holding thumbnails, under the same names as their photos.
pub const THUMBNAIL_DIR: &str = "thumbs";

/// A photo ready to store: re-encoded from a decodable JPEG, PNG, WebP or GIF of sane size.
#[derive(Debug, Clone)]
pub struct Photo {
    bytes: Vec<u8>,
    thumbnail: Vec<u8>,
    extension: &'static str,
}

impl Photo {
    pub fn extension(&self) -> &'static str {
        self.extension
    }
}

/// What the header says the upload is, checked before any decoding.
#[derive(Debug, Clone, Copy)]
struct Inspected {
    format: ImageFormat,
    extension: &'static str,
}

/// Checks the upload's type, then its dimensions from the header: 415 when not one of the
/// accepted types, 422 when its header is unreadable or claims too many pixels. Cheap (no
/// pixel is decoded), so it runs before a decode slot is taken: a bomb that declares too
/// many pixels is refused at once whatever else is being decoded.
fn inspect(bytes: &[u8], max_pixels: u64) -> Result<Inspected> {
    let (format, extension) = match infer::get(bytes).map(|kind| kind.mime_type()) {
        Some("image/jpeg") => (ImageFormat::Jpeg, "jpg"),
        Some("image/png") => (ImageFormat::Png, "png"),
        Some("image/webp") => (ImageFormat::WebP, "webp"),
        Some("image/gif") => (ImageFormat::Gif, "gif"),
        _ => {
            return Err(Error::UnsupportedMediaType(
                "Photo must be a JPEG, PNG, WebP or GIF image".into(),
            ))
        }
    };
    let undecodable = |_| Error::invalid("file", "file is not a decodable image");
    // The header alone: a tiny file can claim gigapixels, so nothing is decoded before this.
    let (width, height) = image::ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(undecodable)?;
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(Error::invalid(
            "file",
            format!("image dimensions must be between 1 and {MAX_DIMENSION} pixels per side"),
        ));
    }
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(Error::invalid(
            "file",
            format!("image must have at most {max_pixels} pixels (width x height)"),
        ));
    }
    Ok(Inspected { format, extension })
}

/// Decodes an inspected upload within memory limits and re-encodes it (in the format it
/// came in), with its thumbnail. 422 when it cannot be decoded.
fn decode(bytes: &[u8], inspected: Inspected, max_pixels: u64) -> Result<Photo> {
    let Inspected { format, extension } = inspected;
    let undecodable = |_| Error::invalid("file", "file is not a decodable image");
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    // Room for the budget at 16-bit RGBA; the decoder refuses to allocate more.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(64 * 1024 * 1024));
    reader.limits(limits);
    let decoded = reader.decode().map_err(undecodable)?;

    let stored = shrink(decoded, STORED_MAX_SIDE);
    let thumbnail = shrink(stored.clone(), THUMBNAIL_MAX_SIDE);
    Ok(Photo {
        bytes: encode(stored, format)?,
        thumbnail: encode(thumbnail, format)?,
        extension,
    })
}

/// Scales the image down (never up) so its longest side is at most `max_side`.
fn shrink(image: DynamicImage, max_side: u32) -> DynamicImage {
    if image.width().max(image.height()) <= max_side {
        return image;
    }
    image.resize(max_side, max_side, FilterType::Triangle)
}

fn encode(image: DynamicImage, format: ImageFormat) -> Result<Vec<u8>> {
    // JPEG has no alpha; the other encoders all take 8-bit RGBA.
    let image = match format {
        ImageFormat::Jpeg => DynamicImage::ImageRgb8(image.to_rgb8()),
        _ => DynamicImage::ImageRgba8(image.to_rgba8()),
    };
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), format)
        .context("re-encoding a photo")?;
    Ok(out)
}

/// The folder photos live in, and the bound on decodes in progress.
#[derive(Debug, Clone)]
pub struct MediaStore {
    dir: PathBuf,
    max_pixels: u64,
    decodes: Arc<Semaphore>,
    /// Where decoding runs, below every request's priority.
    cpu: Arc<CpuPool>,
}

impl MediaStore {
    /// `max_pixels`: the pixel budget per photo; `decode_concurrency`: photos decoded at
    /// once (at least 1).
    pub fn new(
        dir: impl Into<PathBuf>,
        max_pixels: u64,
        decode_concurrency: usize,
        cpu: Arc<CpuPool>,
    ) -> anyhow::Result<Self> {
        let dir = dir.into();
        let thumbs = dir.join(THUMBNAIL_DIR);
        std::fs::create_dir_all(&thumbs)
            .with_context(|| format!("creating {}", thumbs.display()))?;
        Ok(Self {
            dir,
            max_pixels,
            decodes: Arc::new(Semaphore::new(decode_concurrency.max(1))),
            cpu,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Validates and re-encodes uploaded bytes (see `process`): 413 when too large, 415,
    /// 422, and 503 when as many photos as allowed are already being decoded - answered
    /// at once, since queueing uploads would queue their memory too.
    pub async fn prepare(&self, bytes: Vec<u8>) -> Result<Photo> {
        if bytes.len() > MAX_PHOTO_BYTES {
            return Err(Error::PayloadTooLarge(format!(
                "Photo must be at most {} MiB",
                MAX_PHOTO_BYTES / 1024 / 1024
            )));
        }
        if bytes.is_empty() {
            return Err(Error::invalid("file", "file is empty"));
        }
        let max_pixels = self.max_pixels;
        let inspected = inspect(&bytes, max_pixels)?;
        let permit = self.decodes.clone().try_acquire_owned().map_err(|_| {
            Error::Unavailable("Too many photos are being processed; try again shortly".into())
        })?;
        self.cpu
            .run(move || {
                // Held until the decode ends, even if the client has gone away meanwhile.
                let _permit = permit;
                decode(&bytes, inspected, max_pixels)
            })
            .await
            .context("photo processing failed")?
    }

    /// Writes the photo and its thumbnail under a new random name (each atomically: temp
    /// file, then rename; the thumbnail first, so a stored photo always has one) and
    /// returns that name.
    pub async fn save(&self, photo: &Photo) -> Result<String> {
        let name = format!("{}.{}", Uuid::new_v4().simple(), photo.extension());
        let thumbs = self.dir.join(THUMBNAIL_DIR);
        write_atomically(&thumbs, &name, &photo.thumbnail).await?;
        if let Err(err) = write_atomically(&self.dir, &name, &photo.bytes).await {
            let _ = tokio::fs::remove_file(thumbs.join(&name)).await;
            return Err(err);
        }
        Ok(name)
    }

    /// Removes a stored photo; a file already gone is fine.
    pub async fn remove(&self, name: &str) {
        // Names come from our own `save`, but never follow one out of the folder.
        if name.contains('/') || name.contains('\\') || name.starts_with('.') {
            tracing::warn!(
                name,
                "refusing to remove a media file with a path in its name"
            );
            return;
        }
        for path in [self.dir.join(name), self.dir.join(THUMBNAIL_DIR).join(name)] {
            if let Err(err) = tokio::fs::remove_file(path).await {
                if err.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(name, error = %err, "could not remove old media file");
                }
            }
        }
    }
}

async fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let temp = dir.join(format!(".{name}.partial"));
    let path = dir.join(name);
    tokio::fs::write(&temp, bytes)
        .await
        .with_context(|| format!("writing {}", temp.display()))?;
    tokio::fs::rename(&temp, &path)
        .await
        .with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        DynamicImage::new_rgb8(width, height)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .expect("encoding a test image");
        out
    }

    #[tokio::test]
    async fn uploads_beyond_the_decode_bound_are_answered_503_at_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = MediaStore::new(
            dir.path(),
            4096 * 4096,
            2,
            Arc::new(crate::cpu::CpuPool::new(2).expect("pool")),
        )
        .expect("store");
        // Two decodes in progress take every permit.
        let held = store
            .decodes
            .clone()
            .acquire_many_owned(2)
            .await
            .expect("permits");
        let err = store.prepare(png(4, 4)).await.expect_err("refused");
        assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
        // One that declares too many pixels is refused for that, at once, slots or not.
        let err = store.prepare(png(5000, 5000)).await.expect_err("refused");
        assert!(matches!(err, Error::Validation { .. }), "{err:?}");
        drop(held);
        let photo = store.prepare(png(4, 4)).await.expect("accepted once free");
        assert_eq!(photo.extension(), "png");
    }

    #[test]
    fn the_pixel_budget_is_checked_before_decoding() {
        // 3000x3000 is within the per-side bound but over a 4 Mpx budget.
        let err = inspect(&png(3000, 3000), 2000 * 2000).expect_err("refused");
        assert!(matches!(err, Error::Validation { .. }), "{err:?}");
        let bytes = png(2000, 2000);
        let inspected = inspect(&bytes, 2000 * 2000).expect("within the budget");
        assert!(decode(&bytes, inspected, 2000 * 2000).is_ok());
    }
}
