//! The little-endian building blocks of the node's messages: `bytes` = `u32 len | len bytes`,
//! and a cursor whose every read is bounds-checked, so decoders never panic and never allocate
//! more than the bytes actually present.

/// Appends `s` as `u32 len | s`.
pub(crate) fn put_bytes(b: &mut Vec<u8>, s: &[u8]) {
    b.extend_from_slice(&(s.len() as u32).to_le_bytes());
    b.extend_from_slice(s);
}

/// A cursor over a message that never panics.
pub(crate) struct Reader<'a> {
    b: &'a [u8],
    pub(crate) at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Reader<'a> {
        Reader { b, at: 0 }
    }
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    /// A `bytes` field of at most `max` bytes.
    pub(crate) fn bytes_max(&mut self, max: usize) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        if n > max {
            return None;
        }
        Some(self.take(n)?.to_vec())
    }
    /// A `bytes` field (its length is checked against what is present).
    pub(crate) fn bytes(&mut self) -> Option<Vec<u8>> {
        self.bytes_max(usize::MAX)
    }
    /// A UTF-8 `bytes` field.
    pub(crate) fn str(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }
    /// What is left.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.b.get(self.at..).unwrap_or(&[])
    }
    /// `v` if every byte was read, else `None` (trailing bytes are malformed).
    pub(crate) fn end<T>(&self, v: T) -> Option<T> {
        (self.at == self.b.len()).then_some(v)
    }
}
