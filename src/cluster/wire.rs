//! The cluster wire protocol, version 1. After TLS and the handshake
//! (`cluster::tls`), each side sends frames: a 4-octet big-endian length,
//! then a request (`id`, tag, fields) or a response with the same `id`.
//! Requests on one connection may be answered out of order. The full
//! description is in docs/cluster.md.

use super::codec::{Dec, Enc, Malformed};
use super::core::cell::{Applied, Cell, Cond};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const VERSION: u16 = 1;
/// Largest frame accepted: a body of the largest allowed message plus room.
pub const MAX_FRAME: usize = 128 * 1024 * 1024;

/// One record to store.
#[derive(Debug, Clone)]
pub struct Item {
    pub key: Vec<u8>,
    pub cell: Cell,
    pub cond: Cond,
    /// Set when the receiver stands in for this owner (hinted handoff).
    pub hint_for: Option<String>,
    pub body: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct Release {
    pub qkey: Vec<u8>,
    pub qcell: Cell,
    pub cond: Cond,
    pub hint_for: Option<String>,
    pub key: Vec<u8>,
    pub entry: Cell,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub enum Request {
    /// Health, load and record count.
    Status,
    /// Stores records durably before answering.
    Put(Vec<Item>),
    /// Records (and bodies when asked) by key.
    Get { keys: Vec<Vec<u8>>, bodies: bool },
    /// Records whose key starts with `prefix`, after `after`, at most `limit`.
    Scan { prefix: Vec<u8>, after: Vec<u8>, limit: u32, reverse: bool },
    /// A quarantine search: JSON of (QFilter, QPage); answers matching records.
    Search(Vec<u8>),
    /// Quarantine keys whose retention ended by `now`.
    Due { now: u64, budget: u32 },
    /// Exactly-once release: when the quarantine record takes `qcell`
    /// under `cond`, the queue entry and its body are stored with it, in
    /// one commit; otherwise neither.
    Release(Release),
    /// Anti-entropy: digests of the keys the asking node (`peer`) and this
    /// one both own.
    Digests { peer: String },
    /// Anti-entropy: keys and fingerprints in these buckets.
    Keys { peer: String, buckets: Vec<u32> },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub records: u64,
    /// Writes waiting in the node's commit queue.
    pub load: u64,
    /// True until the node has compared its records with every peer since
    /// it started.
    pub catching_up: bool,
    /// Records this node holds for other nodes that were down, per node.
    pub hints: Vec<(String, u64)>,
    pub disk_free: u64,
}

/// A key, its record when there is one, and its body when asked for.
pub type CellItem = (Vec<u8>, Option<Cell>, Option<Vec<u8>>);

#[derive(Debug, Clone)]
pub enum Response {
    Error(String),
    Status(NodeStatus),
    Applied(Vec<Applied>),
    Cells(Vec<CellItem>),
    Keys(Vec<(Vec<u8>, u64)>),
    Digests(Vec<u64>),
}

fn applied_tag(a: Applied) -> u8 {
    match a {
        Applied::Taken => 0,
        Applied::Kept => 1,
        Applied::Refused => 2,
    }
}

impl Request {
    pub fn encode(&self, id: u64) -> Vec<u8> {
        let mut e = Enc::default();
        e.u64(id);
        match self {
            Request::Status => e.u8(1),
            Request::Put(items) => {
                e.u8(2).u32(items.len() as u32);
                for i in items {
                    e.bytes(&i.key).cell(&i.cell).u8(u8::from(i.cond == Cond::Advance));
                    e.opt_bytes(i.hint_for.as_deref().map(str::as_bytes)).opt_bytes(i.body.as_deref());
                }
                &mut e
            }
            Request::Get { keys, bodies } => {
                e.u8(3).u8(u8::from(*bodies)).u32(keys.len() as u32);
                keys.iter().for_each(|k| {
                    e.bytes(k);
                });
                &mut e
            }
            Request::Scan { prefix, after, limit, reverse } => {
                e.u8(4).bytes(prefix).bytes(after).u32(*limit).u8(u8::from(*reverse))
            }
            Request::Search(q) => e.u8(5).bytes(q),
            Request::Due { now, budget } => e.u8(6).u64(*now).u32(*budget),
            Request::Release(r) => e
                .u8(7)
                .bytes(&r.qkey)
                .cell(&r.qcell)
                .u8(u8::from(r.cond == Cond::Advance))
                .opt_bytes(r.hint_for.as_deref().map(str::as_bytes))
                .bytes(&r.key)
                .cell(&r.entry)
                .bytes(&r.body),
            Request::Digests { peer } => e.u8(8).str(peer),
            Request::Keys { peer, buckets } => {
                e.u8(9).str(peer).u32(buckets.len() as u32);
                buckets.iter().for_each(|b| {
                    e.u32(*b);
                });
                &mut e
            }
        };
        e.0
    }

    pub fn decode(buf: &[u8]) -> Result<(u64, Request), Malformed> {
        let mut d = Dec(buf);
        let id = d.u64()?;
        let req = match d.u8()? {
            1 => Request::Status,
            2 => {
                let n = d.count(20)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    let (key, cell) = (d.bytes()?, d.cell()?);
                    let cond = if d.u8()? == 1 { Cond::Advance } else { Cond::Merge };
                    let hint_for = d.opt_bytes()?.map(|h| String::from_utf8_lossy(&h).into_owned());
                    items.push(Item { key, cell, cond, hint_for, body: d.opt_bytes()? });
                }
                Request::Put(items)
            }
            3 => {
                let bodies = d.u8()? == 1;
                let n = d.count(4)?;
                let keys = (0..n).map(|_| d.bytes()).collect::<Result<_, _>>()?;
                Request::Get { keys, bodies }
            }
            4 => Request::Scan { prefix: d.bytes()?, after: d.bytes()?, limit: d.u32()?, reverse: d.u8()? == 1 },
            5 => Request::Search(d.bytes()?),
            6 => Request::Due { now: d.u64()?, budget: d.u32()? },
            7 => Request::Release(Release {
                qkey: d.bytes()?,
                qcell: d.cell()?,
                cond: if d.u8()? == 1 { Cond::Advance } else { Cond::Merge },
                hint_for: d.opt_bytes()?.map(|h| String::from_utf8_lossy(&h).into_owned()),
                key: d.bytes()?,
                entry: d.cell()?,
                body: d.bytes()?,
            }),
            8 => Request::Digests { peer: d.str()? },
            9 => {
                let peer = d.str()?;
                let n = d.count(4)?;
                Request::Keys { peer, buckets: (0..n).map(|_| d.u32()).collect::<Result<_, _>>()? }
            }
            _ => return Err(Malformed("unknown request")),
        };
        d.end()?;
        Ok((id, req))
    }
}

impl Response {
    pub fn encode(&self, id: u64) -> Vec<u8> {
        let mut e = Enc::default();
        e.u64(id);
        match self {
            Response::Error(m) => e.u8(0).str(m),
            Response::Status(s) => {
                e.u8(1).str(&s.name).u64(s.records).u64(s.load).u8(u8::from(s.catching_up)).u64(s.disk_free);
                e.u32(s.hints.len() as u32);
                for (n, c) in &s.hints {
                    e.str(n).u64(*c);
                }
                &mut e
            }
            Response::Applied(a) => {
                e.u8(2).u32(a.len() as u32);
                a.iter().for_each(|a| {
                    e.u8(applied_tag(*a));
                });
                &mut e
            }
            Response::Cells(cells) => {
                e.u8(3).u32(cells.len() as u32);
                for (k, c, b) in cells {
                    e.bytes(k).opt_cell(c.as_ref()).opt_bytes(b.as_deref());
                }
                &mut e
            }
            Response::Keys(keys) => {
                e.u8(4).u32(keys.len() as u32);
                keys.iter().for_each(|(k, f)| {
                    e.bytes(k).u64(*f);
                });
                &mut e
            }
            Response::Digests(d) => {
                e.u8(5).u32(d.len() as u32);
                d.iter().for_each(|v| {
                    e.u64(*v);
                });
                &mut e
            }
        };
        e.0
    }

    pub fn decode(buf: &[u8]) -> Result<(u64, Response), Malformed> {
        let mut d = Dec(buf);
        let id = d.u64()?;
        let resp = match d.u8()? {
            0 => Response::Error(d.str()?),
            1 => Response::Status(NodeStatus {
                name: d.str()?,
                records: d.u64()?,
                load: d.u64()?,
                catching_up: d.u8()? == 1,
                disk_free: d.u64()?,
                hints: {
                    let n = d.count(12)?;
                    (0..n).map(|_| Ok((d.str()?, d.u64()?))).collect::<Result<_, Malformed>>()?
                },
            }),
            2 => {
                let n = d.count(1)?;
                let tags = (0..n).map(|_| d.u8()).collect::<Result<Vec<_>, _>>()?;
                let of = |t| match t {
                    0 => Ok(Applied::Taken),
                    1 => Ok(Applied::Kept),
                    2 => Ok(Applied::Refused),
                    _ => Err(Malformed("bad applied tag")),
                };
                Response::Applied(tags.into_iter().map(of).collect::<Result<_, _>>()?)
            }
            3 => {
                let n = d.count(6)?;
                let mut cells = Vec::with_capacity(n);
                for _ in 0..n {
                    cells.push((d.bytes()?, d.opt_cell()?, d.opt_bytes()?));
                }
                Response::Cells(cells)
            }
            4 => {
                let n = d.count(12)?;
                Response::Keys((0..n).map(|_| Ok((d.bytes()?, d.u64()?))).collect::<Result<_, Malformed>>()?)
            }
            5 => {
                let n = d.count(8)?;
                Response::Digests((0..n).map(|_| d.u64()).collect::<Result<_, _>>()?)
            }
            _ => return Err(Malformed("unknown response")),
        };
        d.end()?;
        Ok((id, resp))
    }
}

/// Writes the frames sent on `rx` to `w`, coalescing what is queued into
/// one flush, until `rx` closes or a write fails.
pub async fn pump(mut rx: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>, w: impl AsyncWrite + Unpin) {
    let mut w = tokio::io::BufWriter::with_capacity(256 * 1024, w);
    while let Some(frame) = rx.recv().await {
        let mut ok = write_frame(&mut w, &frame).await.is_ok();
        while ok && let Ok(more) = rx.try_recv() {
            ok = write_frame(&mut w, &more).await.is_ok();
        }
        if !ok || w.flush().await.is_err() {
            return;
        }
    }
}

pub async fn write_frame(w: &mut (impl AsyncWrite + Unpin), payload: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4 + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(payload);
    w.write_all(&buf).await
}

/// One frame; `None` at a clean end of stream.
pub async fn read_frame(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} octets is too large"),
        ));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell() -> Cell {
        Cell { ver: 7, rank: 1, dead: false, owner: "gw1".into(), has_body: true, data: b"{\"id\":\"x\"}".to_vec() }
    }

    fn samples() -> Vec<Request> {
        let item = Item {
            key: b"qX".to_vec(),
            cell: cell(),
            cond: Cond::Advance,
            hint_for: Some("n2".into()),
            body: Some(b"body".to_vec()),
        };
        vec![
            Request::Status,
            Request::Put(vec![item]),
            Request::Get { keys: vec![b"qX".to_vec(), b"zY".to_vec()], bodies: true },
            Request::Scan { prefix: b"q".to_vec(), after: b"qA".to_vec(), limit: 10, reverse: true },
            Request::Digests { peer: "n1".into() },
            Request::Keys { peer: "n1".into(), buckets: vec![1, 255] },
        ]
    }

    #[test]
    fn requests_round_trip() {
        for (i, r) in samples().into_iter().enumerate() {
            let bytes = r.encode(i as u64);
            let (id, back) = Request::decode(&bytes).unwrap();
            assert_eq!(id, i as u64);
            assert_eq!(back.encode(id), bytes, "{r:?}");
        }
        let resp = Response::Cells(vec![(b"qX".to_vec(), Some(cell()), None), (b"qY".to_vec(), None, Some(vec![1]))]);
        let (_, back) = Response::decode(&resp.encode(3)).unwrap();
        assert_eq!(back.encode(3), resp.encode(3));
    }

    /// Truncated, corrupted and random frames are refused with an error,
    /// never a panic or a huge allocation.
    #[test]
    fn hostile_frames_are_refused() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for r in samples() {
            let bytes = r.encode(1);
            for cut in 0..bytes.len() {
                assert!(Request::decode(&bytes[..cut]).is_err());
            }
            for _ in 0..200 {
                let mut b = bytes.clone();
                let at = (next() as usize) % b.len();
                b[at] = next() as u8;
                let _ = Request::decode(&b);
            }
        }
        for _ in 0..2000 {
            let len = (next() % 64) as usize;
            let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = Request::decode(&junk);
            let _ = Response::decode(&junk);
        }
        // A count of four billion items in a tiny frame is refused up front.
        let mut e = crate::cluster::codec::Enc::default();
        e.u64(1).u8(3).u8(0).u32(u32::MAX);
        assert!(Request::decode(&e.0).is_err());
    }
}
