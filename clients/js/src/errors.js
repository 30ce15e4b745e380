// The client's one error type, shared by the connection, the tab group and the facade.

/** An error with the protocol's `code` (or the client's own: disconnected, timeout, ...). */
export class PNSError extends Error {
  constructor(code, message, options) {
    super(message || code, options);
    this.name = "PNSError";
    this.code = code;
  }
}

/** A PNSError as plain data, to cross a BroadcastChannel. */
export const errorData = (error) => ({ code: error.code || "internal", message: error.message });

/** The PNSError that errorData() described. */
export const errorFrom = (data) => new PNSError(data.code, data.message);
