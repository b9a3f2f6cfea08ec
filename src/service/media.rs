//! Profile photos: validated from their bytes (never the name or declared type) and kept
//! in MEDIA_DIR under random names.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::Context;
use uuid::Uuid;

use crate::error::{Error, Result};

/// Largest photo accepted.
pub const MAX_PHOTO_BYTES: usize = 5 * 1024 * 1024;
/// Largest width or height accepted; larger images are refused before being decoded.
const MAX_DIMENSION: u32 = 8_192;
/// Memory the decoder may use for one photo (guards against decompression bombs).
const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;

/// A photo whose bytes were checked to be a decodable JPEG, PNG, WebP or GIF of sane size.
#[derive(Debug, Clone)]
pub struct Photo {
    bytes: Vec<u8>,
    extension: &'static str,
}

impl Photo {
    /// Validates uploaded bytes: 413 when too large, 415 when not one of the accepted
    /// types, 422 when the image cannot be decoded or is too large in pixels.
    pub async fn parse(bytes: Vec<u8>) -> Result<Self> {
        if bytes.len() > MAX_PHOTO_BYTES {
            return Err(Error::PayloadTooLarge(format!(
                "Photo must be at most {} MiB",
                MAX_PHOTO_BYTES / 1024 / 1024
            )));
        }
        if bytes.is_empty() {
            return Err(Error::invalid("file", "file is empty"));
        }
        let (format, extension) = match infer::get(&bytes).map(|kind| kind.mime_type()) {
            Some("image/jpeg") => (image::ImageFormat::Jpeg, "jpg"),
            Some("image/png") => (image::ImageFormat::Png, "png"),
            Some("image/webp") => (image::ImageFormat::WebP, "webp"),
            Some("image/gif") => (image::ImageFormat::Gif, "gif"),
            _ => {
                return Err(Error::UnsupportedMediaType(
                    "Photo must be a JPEG, PNG, WebP or GIF image".into(),
                ))
            }
        };
        tokio::task::spawn_blocking(move || {
            check_decodes(&bytes, format)?;
            Ok(Self { bytes, extension })
        })
        .await
        .context("photo validation task failed")?
    }

    pub fn extension(&self) -> &'static str {
        self.extension
    }
}

fn check_decodes(bytes: &[u8], format: image::ImageFormat) -> Result<()> {
    let undecodable = |_| Error::invalid("file", "file is not a decodable image");
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let (width, height) = image::ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(undecodable)?;
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(Error::invalid(
            "file",
            format!("image dimensions must be between 1 and {MAX_DIMENSION} pixels per side"),
        ));
    }
    reader.decode().map(|_| ()).map_err(undecodable)
}

/// The folder photos live in.
#[derive(Debug, Clone)]
pub struct MediaStore {
    dir: PathBuf,
}

impl MediaStore {
    pub fn new(dir: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the photo under a new random name (atomically: temp file, then rename) and
    /// returns that name.
    pub async fn save(&self, photo: &Photo) -> Result<String> {
        let name = format!("{}.{}", Uuid::new_v4().simple(), photo.extension());
        let temp = self.dir.join(format!(".{name}.partial"));
        let path = self.dir.join(&name);
        tokio::fs::write(&temp, &photo.bytes)
            .await
            .with_context(|| format!("writing {}", temp.display()))?;
        tokio::fs::rename(&temp, &path)
            .await
            .with_context(|| format!("renaming to {}", path.display()))?;
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
        if let Err(err) = tokio::fs::remove_file(self.dir.join(name)).await {
            if err.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(name, error = %err, "could not remove old media file");
            }
        }
    }
}
