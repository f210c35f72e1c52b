"""supervisord's event listener: a program that cannot start takes the container down; repeated
restarts raise an alert."""
