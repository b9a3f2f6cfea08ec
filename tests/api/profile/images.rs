//! Pictures to upload, encoded or crafted byte by byte.

use std::io::Cursor;

use image::ImageFormat;

pub const PNG_MAGIC: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// A small picture (a gradient, so the encoders have something to encode).
pub fn image_bytes(format: ImageFormat) -> Vec<u8> {
    let picture = image::RgbImage::from_fn(16, 12, |x, y| {
        image::Rgb([(x * 15) as u8, (y * 20) as u8, ((x + y) * 7) as u8])
    });
    let mut buf = Vec::new();
    image::DynamicImage::ImageRgb8(picture)
        .write_to(&mut Cursor::new(&mut buf), format)
        .unwrap();
    buf
}

pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = Vec::with_capacity(data.len() + 12);
    chunk.extend_from_slice(&(data.len() as u32).to_be_bytes());
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    let mut covered = kind.to_vec();
    covered.extend_from_slice(data);
    chunk.extend_from_slice(&crc32(&covered).to_be_bytes());
    chunk
}

/// zlib data holding `raw` in one stored (uncompressed) block.
fn zlib_stored(raw: &[u8]) -> Vec<u8> {
    assert!(raw.len() <= 0xFFFF);
    let mut out = vec![0x78, 0x01, 0x01];
    let len = raw.len() as u16;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(raw);
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

/// A PNG made by hand: an 8-bit RGB header claiming `width` x `height`, and image data
/// for a 1x1 picture (correct only when the header says 1x1).
pub fn crafted_png(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = PNG_MAGIC.to_vec();
    png.extend(png_chunk(b"IHDR", &ihdr));
    // One scanline: filter byte 0, then one red pixel.
    png.extend(png_chunk(b"IDAT", &zlib_stored(&[0, 255, 0, 0])));
    png.extend(png_chunk(b"IEND", &[]));
    png
}

/// A PNG of noise (which does not compress) just under 5 MiB.
pub fn noisy_png_just_under_five_mib() -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let picture = image::RgbImage::from_fn(1290, 1290, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let [r, g, b, ..] = state.to_le_bytes();
        image::Rgb([r, g, b])
    });
    let mut buf = Vec::new();
    image::DynamicImage::ImageRgb8(picture)
        .write_to(&mut Cursor::new(&mut buf), ImageFormat::Png)
        .unwrap();
    buf
}
