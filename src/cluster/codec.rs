//! A small binary codec for the wire protocol: big-endian integers,
//! length-prefixed bytes. Decoding never panics on hostile input: every
//! read checks the remaining length and every length is bounded by it.

use super::core::cell::Cell;

#[derive(Debug, thiserror::Error)]
#[error("malformed cluster message: {0}")]
pub struct Malformed(pub &'static str);

#[derive(Default)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
        self
    }
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    pub fn opt_bytes(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            Some(b) => self.u8(1).bytes(b),
            None => self.u8(0),
        }
    }
    pub fn cell(&mut self, c: &Cell) -> &mut Self {
        self.u64(c.ver).u8(c.rank).u8(u8::from(c.dead) | u8::from(c.has_body) << 1).str(&c.owner).bytes(&c.data)
    }
    pub fn opt_cell(&mut self, c: Option<&Cell>) -> &mut Self {
        match c {
            Some(c) => self.u8(1).cell(c),
            None => self.u8(0),
        }
    }
}

pub struct Dec<'a>(pub &'a [u8]);

impl<'a> Dec<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    pub fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    pub fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }
    pub fn bytes(&mut self) -> Result<Vec<u8>, Malformed> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    pub fn str(&mut self) -> Result<String, Malformed> {
        String::from_utf8(self.bytes()?).map_err(|_| Malformed("string is not UTF-8"))
    }
    pub fn opt_bytes(&mut self) -> Result<Option<Vec<u8>>, Malformed> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.bytes()?)),
            _ => Err(Malformed("bad option tag")),
        }
    }
    pub fn cell(&mut self) -> Result<Cell, Malformed> {
        let (ver, rank, flags) = (self.u64()?, self.u8()?, self.u8()?);
        let (owner, data) = (self.str()?, self.bytes()?);
        Ok(Cell { ver, rank, dead: flags & 1 != 0, has_body: flags & 2 != 0, owner, data })
    }
    pub fn opt_cell(&mut self) -> Result<Option<Cell>, Malformed> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.cell()?)),
            _ => Err(Malformed("bad option tag")),
        }
    }
    /// A count of items that each take at least `min` octets: bounded by
    /// what is left, so a hostile count cannot make us allocate.
    pub fn count(&mut self, min: usize) -> Result<usize, Malformed> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min.max(1)) > self.0.len() {
            return Err(Malformed("count larger than the message"));
        }
        Ok(n)
    }
    pub fn end(&self) -> Result<(), Malformed> {
        if self.0.is_empty() { Ok(()) } else { Err(Malformed("trailing octets")) }
    }
}
