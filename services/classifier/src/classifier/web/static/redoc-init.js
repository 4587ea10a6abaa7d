// Loaded on /redoc before ReDoc's bundle. ReDoc's side menu always shows Redocly's logo from
// their CDN; nothing on these pages may come from another host (the policy would refuse it and
// log a violation), so that one address becomes the service's own icon before it is requested.
"use strict";
(() => {
  const remoteLogo = "https://cdn.redoc.ly/";
  const ownIcon = "/static/icon.svg";
  const local = (value) => (String(value).startsWith(remoteLogo) ? ownIcon : value);
  const setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function setAttributeLocally(name, value) {
    const isSrc = this instanceof HTMLImageElement && String(name).toLowerCase() === "src";
    return setAttribute.call(this, name, isSrc ? local(value) : value);
  };
  const src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  Object.defineProperty(HTMLImageElement.prototype, "src", {
    ...src,
    set(value) {
      src.set.call(this, local(value));
    },
  });
})();
