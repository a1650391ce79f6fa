//! Layers: a tarball (plain, gzip or zstd, recognised by its first bytes) unpacked once into a
//! snapshot directory that overlayfs stacks as a lower layer.

pub mod extract;
#[cfg(any(test, feature = "testing"))]
pub mod fixtures;

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

pub use extract::{ExtractOptions, LayerError, Stats, unpack};

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A bare tar.
    None,
    /// gzip (`application/vnd.oci.image.layer.v1.tar+gzip`, Docker's default).
    Gzip,
    /// zstd (`...tar+zstd`).
    Zstd,
}

/// Recognises the compression from the first bytes of a blob.
pub fn sniff(head: &[u8]) -> Compression {
    match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Wraps `reader` in the decompressor its first bytes call for.
pub fn decompress<'a>(reader: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut buf = BufReader::with_capacity(256 * 1024, reader);
    let kind = sniff(buf.fill_buf()?);
    Ok(match kind {
        Compression::None => Box::new(buf),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buf)?),
    })
}

/// Unpacks a (possibly compressed) layer into `dest`, which must not exist: it is built in a
/// sibling directory and renamed into place whole, so `dest` either holds the complete layer or
/// is absent; on error nothing is left behind.
pub fn extract_layer(
    reader: impl Read,
    dest: &Path,
    opts: ExtractOptions,
) -> Result<Stats, LayerError> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dest.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let io_err = |source| LayerError::Io {
        entry: String::new(),
        source,
    };
    let _ = crate::tree::remove_tree(&tmp);
    fs::create_dir_all(&tmp).map_err(io_err)?;
    let result = decompress(reader)
        .map_err(io_err)
        .and_then(|r| unpack(r, &tmp, opts))
        .and_then(|stats| fs::rename(&tmp, dest).map(|()| stats).map_err(io_err));
    if result.is_err() {
        let _ = crate::tree::remove_tree(&tmp);
    }
    result
}

#[cfg(test)]
mod tests;
