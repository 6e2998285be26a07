// What both players (live.js, playback.js) need from the browser's Media Source Extensions.
// iPhones (iOS 17.1 and later) have no MediaSource, only ManagedMediaSource: it plays the same
// fragmented MP4, but needs remote playback (AirPlay) switched off and may ask the page to stop
// appending for a while to save power (endstreaming) and to go on later (startstreaming).
"use strict";
const diaolouMedia = (() => {
  const Source = window.ManagedMediaSource || window.MediaSource || null;
  const managed = Boolean(window.ManagedMediaSource);

  // "avc1.PPCCLL" from the avcC box of the init segment (profile, compatibility, level).
  function codecOf(init) {
    for (let i = 4; i + 8 < init.length; i++) {
      if (init[i] === 0x61 && init[i + 1] === 0x76 && init[i + 2] === 0x63 && init[i + 3] === 0x43) {
        const hex = (b) => b.toString(16).padStart(2, "0");
        return `avc1.${hex(init[i + 5])}${hex(init[i + 6])}${hex(init[i + 7])}`;
      }
      if (init[i] === 0x68 && init[i + 1] === 0x76 && init[i + 2] === 0x63 && init[i + 3] === 0x43) {
        return "hvc1.1.6.L93.B0";
      }
    }
    return "avc1.42E01E";
  }

  // A media source attached to `video`. `streaming` is false while a managed source has asked
  // for no more data; `onresume` is called when it asks again.
  function attach(video) {
    const source = new Source();
    const media = { source, streaming: true, onresume: null, managed };
    if (media.managed) {
      video.disableRemotePlayback = true;
      source.addEventListener("endstreaming", () => { media.streaming = false; });
      source.addEventListener("startstreaming", () => { media.streaming = true; if (media.onresume) media.onresume(); });
    }
    video.src = URL.createObjectURL(source);
    return media;
  }

  return { available: Source !== null, managed, codecOf, attach, isTypeSupported: (type) => Source.isTypeSupported(type) };
})();
