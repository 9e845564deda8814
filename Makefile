# The two commands: `make demo` and `make test`. Both need only Python 3.11 on the machine.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
PROMPT ?= a red circle moves to the right

.PHONY: demo test install install-test clean

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first: 2.13.0 (CPU) is on local disk; a looser pin would pull a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0
	touch $@

$(VENV)/.installed: $(VENV)/.created pyproject.toml
	$(PIP) install --quiet -e .
	@$(MAKE) --no-print-directory fix-opencv
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PIP) install --quiet -e '.[test]'
	@$(MAKE) --no-print-directory fix-opencv
	touch $@

# scenedetect and rapidocr pull the GUI opencv-python, which shadows the headless cv2 and needs libGL.
.PHONY: fix-opencv
fix-opencv:
	-$(PIP) uninstall --quiet -y opencv-python
	$(PIP) install --quiet --force-reinstall --no-deps opencv-python-headless
	$(PY) -c "import cv2"

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(VENV)/bin/kinema generate "$(PROMPT)" -o outputs/demo.mp4

test: install-test
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) outputs .pytest_cache
