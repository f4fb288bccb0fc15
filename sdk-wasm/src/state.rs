//! `InventoryState`, the SDK's IO-free core for JavaScript: feed it the
//! node's frames from any transport (a worker, a test, a custom socket) and
//! get the changes they made and the view, exactly as `InventoryClient` does.

use protocol::Encoding;
use sdk::ClientState;
use wasm_bindgen::prelude::*;

use crate::client::{encoding_named, to_plain};
use crate::error::{option_to_js, to_js};
use crate::js_view;

/// The player's inventories as the node's frames describe them, without any
/// IO: duplicates are ignored and gaps reported by `needsResume`.
#[wasm_bindgen]
#[derive(Debug)]
pub struct InventoryState {
    state: ClientState,
    encoding: Encoding,
}

#[wasm_bindgen]
impl InventoryState {
    /// An empty state reading frames in `encoding` (`"json"`, the default,
    /// or `"msgpack"`).
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_optional_param_type = "\"json\" | \"msgpack\"")] encoding: Option<
            String,
        >,
    ) -> Result<InventoryState, JsValue> {
        let encoding = match encoding {
            Some(name) => encoding_named(&name).map_err(|e| option_to_js(&e))?,
            None => Encoding::Json,
        };
        Ok(Self {
            state: ClientState::default(),
            encoding,
        })
    }

    /// Applies one frame of the node (a string for JSON, bytes for
    /// MessagePack) and returns the changes it made. Throws an
    /// `InventoryError` for a frame that breaks the wire contract.
    #[wasm_bindgen(js_name = applyFrame, unchecked_return_type = "InventoryChange[]")]
    pub fn apply_frame(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] frame: JsValue,
    ) -> Result<JsValue, JsValue> {
        let bytes = match frame.as_string() {
            Some(text) => text.into_bytes(),
            None => js_sys::Uint8Array::new(&frame).to_vec(),
        };
        let message = protocol::decode_server(self.encoding, &bytes)
            .map_err(|e| to_js(&sdk::Error::from(e)))?;
        let changes = self.state.handle(message);
        let changes: Vec<_> = changes.iter().filter_map(js_view::change).collect();
        Ok(to_plain(&changes))
    }

    /// Whether a gap was seen: the transport should send a `Hello` with
    /// `resume` (what `InventoryClient` does by itself).
    #[wasm_bindgen(getter, js_name = needsResume)]
    pub fn needs_resume(&self) -> bool {
        self.state.needs_resume()
    }

    /// Every inventory, as `InventoryClient.items()`.
    #[wasm_bindgen(unchecked_return_type = "OwnerInventory[]")]
    pub fn items(&self) -> JsValue {
        to_plain(&js_view::owners(&self.state.view()))
    }
}
