"""Running Soundstage graphs without ComfyUI: API stubs, workflow conversion, validation, execution."""
