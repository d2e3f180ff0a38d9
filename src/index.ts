// moxing: the package entry. Importing it registers the backends (the native one when its addon
// loads, else the reference one) and exposes the library.

import "./backends/reference/index.js";
import "./backends/native/index.js";

export * from "./tensor/index.js";
