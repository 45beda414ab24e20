//! The rest-api example: create, read, update, list and delete notes as JSON.
//!
//! `POST /notes {"text": "..."}` → 201 with the note; `GET /notes` lists them;
//! `GET|PUT|DELETE /notes/{id}`. Notes live in this instance's memory (the function
//! sets `instance_reuse = true`), which is enough for a demo and lost on redeploy.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wstd::http::{Body, Error, Method, Request, Response, StatusCode};

#[derive(Debug, Clone, Serialize)]
struct Note {
    id: u64,
    text: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteInput {
    text: String,
}

#[derive(Default)]
struct Notes {
    next_id: u64,
    notes: BTreeMap<u64, Note>,
}

thread_local! {
    static NOTES: RefCell<Notes> = RefCell::new(Notes { next_id: 1, notes: BTreeMap::new() });
}

#[wstd::http_server]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, Error> {
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let method = request.method().clone();
    let id = match path.strip_prefix("/notes/") {
        Some(id) => match id.parse::<u64>() {
            Ok(id) => Some(id),
            Err(_) => return json(StatusCode::BAD_REQUEST, &error("the note id must be a number")),
        },
        None => None,
    };
    match (method, id) {
        (Method::GET, None) => {
            let notes: Vec<Note> = NOTES.with_borrow(|n| n.notes.values().cloned().collect());
            json(StatusCode::OK, &serde_json::json!({ "notes": notes }))
        }
        (Method::POST, None) => {
            let input = match read_input(&mut request).await {
                Ok(input) => input,
                Err(message) => return json(StatusCode::BAD_REQUEST, &error(&message)),
            };
            let note = NOTES.with_borrow_mut(|n| {
                let note = Note { id: n.next_id, text: input.text };
                n.next_id += 1;
                n.notes.insert(note.id, note.clone());
                note
            });
            println!("created note {}", note.id);
            json(StatusCode::CREATED, &note)
        }
        (Method::GET, Some(id)) => match NOTES.with_borrow(|n| n.notes.get(&id).cloned()) {
            Some(note) => json(StatusCode::OK, &note),
            None => json(StatusCode::NOT_FOUND, &error(&format!("no note {id}"))),
        },
        (Method::PUT, Some(id)) => {
            let input = match read_input(&mut request).await {
                Ok(input) => input,
                Err(message) => return json(StatusCode::BAD_REQUEST, &error(&message)),
            };
            let updated = NOTES.with_borrow_mut(|n| {
                n.notes.get_mut(&id).map(|note| {
                    note.text = input.text;
                    note.clone()
                })
            });
            match updated {
                Some(note) => json(StatusCode::OK, &note),
                None => json(StatusCode::NOT_FOUND, &error(&format!("no note {id}"))),
            }
        }
        (Method::DELETE, Some(id)) => match NOTES.with_borrow_mut(|n| n.notes.remove(&id)) {
            Some(_) => Ok(Response::builder().status(StatusCode::NO_CONTENT).body(Body::empty())?),
            None => json(StatusCode::NOT_FOUND, &error(&format!("no note {id}"))),
        },
        (method, _) => json(StatusCode::METHOD_NOT_ALLOWED, &error(&format!("{method} is not supported here"))),
    }
}

async fn read_input(request: &mut Request<Body>) -> Result<NoteInput, String> {
    let bytes = request.body_mut().contents().await.map_err(|e| format!("could not read the body: {e}"))?;
    serde_json::from_slice(bytes).map_err(|e| format!("expected {{\"text\": \"...\"}}: {e}"))
}

fn error(message: &str) -> serde_json::Value {
    serde_json::json!({ "error": message })
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Response<Body>, Error> {
    let body = serde_json::to_vec(value).map_err(|e| Error::msg(e.to_string()))?;
    Ok(Response::builder().status(status).header("content-type", "application/json").body(Body::from(body))?)
}
