from rephraser.configs import CONFIGS_DIR

print(CONFIGS_DIR)
