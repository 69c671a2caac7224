//! A request read from its wire bytes as far as the response needs it: the
//! header, the question, the OPT record and a TSIG record, and whether the
//! message is malformed. Record data is skipped, not decoded, so that one
//! bad record hides neither the question nor the OPT from the error
//! response (RFC 6891 section 7: an error response to a query with EDNS
//! carries an OPT too).

use hickory_proto::op::{Header, MessageType, Query};
use hickory_proto::rr::rdata::TSIG;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::wire::Opt;

/// A TSIG record that closes the request's additional section.
#[derive(Debug)]
pub struct Tsig {
    pub key: Name,
    /// `None` when its RDATA cannot be read.
    pub rdata: Option<TSIG>,
}

/// Why a request is malformed (FORMERR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// No question, or more than one.
    QuestionCount,
    /// A name, record or count runs past the end or cannot be read.
    Unreadable,
    /// Records in the answer or authority section of a query.
    Records,
    OptOutsideAdditional,
    TwoOpts,
    OptOwnerNotRoot,
    /// TSIG anywhere but last in the additional section, or twice.
    TsigNotLast,
    /// Bytes after the last record.
    TrailingBytes,
}

pub struct Request<'a> {
    pub header: Header,
    /// The question, when the request has exactly one and it reads.
    pub question: Option<Query>,
    /// The first OPT record, if it has several.
    pub opt: Option<Opt<'a>>,
    pub tsig: Option<Tsig>,
    pub malformed: Option<Malformed>,
}

impl<'a> Request<'a> {
    /// `None` for what gets no response at all: less than a header, or a
    /// response.
    pub fn read(raw: &'a [u8]) -> Option<Request<'a>> {
        let mut decoder = BinDecoder::new(raw);
        let header = Header::read(&mut decoder).ok()?;
        if header.metadata.message_type != MessageType::Query {
            return None;
        }
        let mut request = Request {
            header,
            question: None,
            opt: None,
            tsig: None,
            malformed: None,
        };
        request.malformed = request.walk(raw, &mut decoder).err();
        Some(request)
    }

    fn walk(&mut self, raw: &'a [u8], decoder: &mut BinDecoder<'a>) -> Result<(), Malformed> {
        let counts = self.header.counts;
        let questions = usize::from(counts.queries);
        let mut first_problem = None;
        if questions != 1 {
            first_problem = Some(Malformed::QuestionCount);
        }
        for i in 0..questions {
            let query = Query::read(decoder).map_err(|_| Malformed::Unreadable)?;
            if i == 0 && questions == 1 {
                self.question = Some(query);
            }
        }
        let answers = usize::from(counts.answers) + usize::from(counts.authorities);
        let total = answers + usize::from(counts.additionals);
        for i in 0..total {
            let start = decoder.index();
            let record = skip_record(raw, decoder)?;
            let in_additional = i >= answers;
            let problem = match record.rtype {
                RecordType::OPT if !in_additional => Some(Malformed::OptOutsideAdditional),
                RecordType::OPT if self.opt.is_some() => Some(Malformed::TwoOpts),
                RecordType::OPT => {
                    self.opt = Some(Opt::new(record.class, record.ttl, record.rdata));
                    (!record.root_owner).then_some(Malformed::OptOwnerNotRoot)
                }
                RecordType::TSIG if !in_additional || i + 1 != total => {
                    Some(Malformed::TsigNotLast)
                }
                RecordType::TSIG => {
                    self.tsig = Some(read_tsig(raw, start));
                    None
                }
                _ if !in_additional => Some(Malformed::Records),
                _ => None,
            };
            first_problem = first_problem.or(problem);
        }
        if !decoder.is_empty() {
            first_problem = first_problem.or(Some(Malformed::TrailingBytes));
        }
        first_problem.map_or(Ok(()), Err)
    }
}

/// One record's parts that matter here, its RDATA not decoded.
struct RawRecord<'a> {
    root_owner: bool,
    rtype: RecordType,
    class: u16,
    ttl: u32,
    rdata: &'a [u8],
}

fn skip_record<'a>(
    raw: &'a [u8],
    decoder: &mut BinDecoder<'a>,
) -> Result<RawRecord<'a>, Malformed> {
    let owner = Name::read(decoder).map_err(|_| Malformed::Unreadable)?;
    let at = decoder.index();
    let fixed = raw.get(at..at + 10).ok_or(Malformed::Unreadable)?;
    let rtype = RecordType::from(u16::from_be_bytes([fixed[0], fixed[1]]));
    let class = u16::from_be_bytes([fixed[2], fixed[3]]);
    let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let rdlength = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    let rdata = raw
        .get(at + 10..at + 10 + rdlength)
        .ok_or(Malformed::Unreadable)?;
    decoder
        .read_slice(10 + rdlength)
        .map_err(|_| Malformed::Unreadable)?;
    Ok(RawRecord {
        root_owner: owner.is_root(),
        rtype,
        class,
        ttl,
        rdata,
    })
}

/// The TSIG record starting at `start`, decoded by hickory.
fn read_tsig(raw: &[u8], start: usize) -> Tsig {
    let mut decoder = BinDecoder::new(raw);
    let record = decoder
        .read_slice(start)
        .ok()
        .and_then(|_| Record::read(&mut decoder).ok());
    match record {
        Some(Record {
            name,
            data: RData::TSIG(tsig),
            ..
        }) => Tsig {
            key: name,
            rdata: Some(tsig),
        },
        Some(record) => Tsig {
            key: record.name,
            rdata: None,
        },
        None => Tsig {
            key: Name::root(),
            rdata: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, OpCode};

    fn query() -> Message {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("www.example.test.").unwrap(),
            RecordType::A,
        ));
        m
    }

    #[test]
    fn reads_the_question_and_the_opt_with_its_do_bit() {
        let mut m = query();
        let mut edns = Edns::new();
        edns.set_max_payload(1400).set_dnssec_ok(true);
        m.set_edns(edns);
        let raw = m.to_vec().unwrap();
        let r = Request::read(&raw).unwrap();
        assert_eq!(r.malformed, None);
        assert_eq!(r.question.unwrap().query_type(), RecordType::A);
        let opt = r.opt.unwrap();
        assert_eq!((opt.payload, opt.version, opt.dnssec_ok), (1400, 0, true));
        assert!(r.tsig.is_none());
    }

    #[test]
    fn finds_what_makes_a_request_malformed_and_keeps_the_opt() {
        let opt = [0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 0];
        let plain = query().to_vec().unwrap();
        let with = |additional: &[&[u8]], count: u8| {
            let mut raw = plain.clone();
            raw[11] = count;
            for r in additional {
                raw.extend_from_slice(r);
            }
            raw
        };
        let two = with(&[&opt, &opt], 2);
        let r = Request::read(&two).unwrap();
        assert_eq!(r.malformed, Some(Malformed::TwoOpts));
        assert!(r.opt.unwrap().dnssec_ok);
        assert!(r.question.is_some());

        let mut owned = vec![3, b'f', b'o', b'o', 0];
        owned.extend_from_slice(&opt[1..]);
        let r_owned = with(&[&owned], 1);
        let r = Request::read(&r_owned).unwrap();
        assert_eq!(r.malformed, Some(Malformed::OptOwnerNotRoot));
        assert!(r.opt.is_some());

        let trailing = with(&[&opt, &[1, 2]], 1);
        assert_eq!(
            Request::read(&trailing).unwrap().malformed,
            Some(Malformed::TrailingBytes)
        );
        let cut = with(&[&opt[..8]], 1);
        let r = Request::read(&cut).unwrap();
        assert_eq!(r.malformed, Some(Malformed::Unreadable));
        assert!(r.question.is_some());

        let mut in_answer = with(&[&opt], 0);
        in_answer[7] = 1;
        assert_eq!(
            Request::read(&in_answer).unwrap().malformed,
            Some(Malformed::OptOutsideAdditional)
        );
        let mut no_question = with(&[&opt], 1);
        no_question[5] = 0;
        no_question.drain(12..12 + 22);
        let r = Request::read(&no_question).unwrap();
        assert_eq!(r.malformed, Some(Malformed::QuestionCount));
        assert!(r.opt.is_some());
    }

    #[test]
    fn responses_and_short_packets_get_nothing() {
        let mut raw = query().to_vec().unwrap();
        assert!(Request::read(&raw[..11]).is_none());
        raw[2] |= 0x80;
        assert!(Request::read(&raw).is_none());
    }
}
