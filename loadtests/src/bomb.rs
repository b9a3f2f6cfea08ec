//! PNG upload bombs, made in code: files of a few hundred bytes or kilobytes that declare
//! (or really hold, all zeros) far more pixels than they weigh.

/// A PNG whose header declares `width` x `height` 8-bit RGBA but whose image data is a
/// token few bytes: a server that reads the header first refuses it before decoding.
pub fn declared(width: u32, height: u32) -> Vec<u8> {
    // Two zero bytes of image data (stored deflate block): far short of the declared size.
    let idat = zlib_stored(&[0, 0]);
    png(width, height, &idat)
}

/// A real, valid `width` x `height` 8-bit RGBA PNG, every pixel transparent black: all
/// zeros compress about 1000:1, so 4096 x 4096 (64 MiB decoded) weighs about 420 KB.
pub fn zeros(width: u32, height: u32) -> Vec<u8> {
    let raw = u64::from(height) * (1 + 4 * u64::from(width));
    png(width, height, &zlib_zeros(raw))
}

fn png(width: u32, height: u32, idat: &[u8]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    // Bit depth 8, colour type 6 (RGBA), deflate, adaptive filtering, no interlace.
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
}

fn crc32(bytes: &[u8]) -> u32 {
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

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in bytes {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

/// A zlib stream of one stored (uncompressed) block.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let len = data.len() as u16;
    let mut out = vec![0x78, 0x01, 0x01];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

/// A zlib stream of `n` zero bytes: one fixed-Huffman block, a literal zero and then
/// back-references of 258 bytes at distance 1 (13 bits each).
fn zlib_zeros(n: u64) -> Vec<u8> {
    let mut bits = BitWriter::default();
    bits.bits(1, 1); // BFINAL
    bits.bits(1, 2); // BTYPE = 01, fixed Huffman
    if n > 0 {
        bits.code(0x30, 8); // literal 0
        let rest = n - 1;
        for _ in 0..rest / 258 {
            bits.code(0xC5, 8); // length code 285: 258 bytes
            bits.code(0, 5); // distance code 0: distance 1
        }
        for _ in 0..rest % 258 {
            bits.code(0x30, 8);
        }
    }
    bits.code(0, 7); // end of block (256)
    let mut out = vec![0x78, 0x01];
    out.extend(bits.finish());
    // Adler-32 of n zeros: a stays 1, b grows by 1 per byte.
    let adler = (((n % 65_521) as u32) << 16) | 1;
    out.extend_from_slice(&adler.to_be_bytes());
    out
}

/// Deflate's bit order: values least significant bit first, Huffman codes most
/// significant bit first.
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    len: u32,
}

impl BitWriter {
    fn bits(&mut self, value: u32, count: u32) {
        self.acc |= u64::from(value) << self.len;
        self.len += count;
        while self.len >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.len -= 8;
        }
    }

    fn code(&mut self, code: u32, count: u32) {
        self.bits(code.reverse_bits() >> (32 - count), count);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.len > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        let stream = zlib_zeros(1000);
        assert_eq!(
            u32::from_be_bytes(stream[stream.len() - 4..].try_into().unwrap()),
            adler32(&[0; 1000])
        );
    }

    #[test]
    fn bombs_decode_or_declare_what_they_say() {
        let small = zeros(300, 200);
        let image = image::load_from_memory(&small).expect("a valid PNG");
        assert_eq!((image.width(), image.height()), (300, 200));
        assert!(image.to_rgba8().pixels().all(|p| p.0 == [0, 0, 0, 0]));

        let big = zeros(4096, 4096);
        assert!(big.len() < 500_000, "{} bytes", big.len());

        let liar = declared(20_000, 20_000);
        let reader =
            image::ImageReader::with_format(std::io::Cursor::new(&liar), image::ImageFormat::Png);
        assert_eq!(reader.into_dimensions().expect("header"), (20_000, 20_000));
        assert!(image::load_from_memory(&liar).is_err());
    }
}
