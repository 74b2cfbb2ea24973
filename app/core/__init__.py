"""The app's core: plain asyncio, no Qt; runs headless and under the tray alike."""
